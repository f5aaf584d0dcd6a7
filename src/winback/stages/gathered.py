"""What a partitioned run's flow holds of its partitions as they arrive, and where it keeps their frames.

A module of its own, light on imports: the reads' subflow returns a `Gathered`, and Prefect hands each Dask
worker the subflow's context with every partition, so every worker imports the module that defines the
subflow and what that module imports (flows/partitions.py). The steps that use what is gathered (the fit,
scoring, deciding) live in stages.partitioned, which a worker never needs.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from winback.segments.model_inputs import MODEL_INPUTS, spend_problems
from winback.stages.reads import GatedPartition
from winback.warehouse.quality import Findings, check_share


class PartitionSpill:
    """Each partition's frames between the run-wide steps: in a private temporary folder, or held in memory.

    On disk, the flow's memory does not grow with the run (a 10M run's flow stays under 2 GiB). Held in
    memory (`on_disk=False`), for a run one process would hold whole anyway (`PartitionPlan.in_memory`),
    nothing is written and read back: pickling each partition out and in again was 5.6 s of a 1M run's
    flow (bench/scale.py under py-spy, 2 cores). `close` lets go of whatever is left either way.
    """

    def __init__(self, *, on_disk: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="winback-partitions-")) if on_disk else None
        self._held: dict[tuple[str, int], Any] = {}
        self._waits: list[Callable[[], None]] = []

    def wait_on_close(self, wait: Callable[[], None]) -> None:
        """Have `close` also wait for `wait`: what the reads left finishing meanwhile (their cluster's close)."""
        self._waits.append(wait)

    def put(self, stage: str, index: int, value: Any) -> None:
        """Keep `value` as partition `index`'s frames for `stage`."""
        if self.root is None:
            self._held[(stage, index)] = value
            return
        with open(self.root / f"{stage}-{index}.pickle", "wb") as out:
            pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)

    def take(self, stage: str, index: int) -> Any:
        """Partition `index`'s frames for `stage`, let go of here (each is read once)."""
        if self.root is None:
            return self._held.pop((stage, index))
        path = self.root / f"{stage}-{index}.pickle"
        with open(path, "rb") as source:
            value = pickle.load(source)  # written by this process, in its own folder
        path.unlink()
        return value

    def close(self) -> None:
        """Let go of what is left (a failed run's partitions), remove the folder, wait for what the reads left."""
        self._held.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        while self._waits:
            self._waits.pop()()

    def __enter__(self) -> PartitionSpill:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class Gathered:
    """What the flow holds of every partition while their frames wait on disk."""

    spill: PartitionSpill
    kept: list[int] = field(default_factory=list)  # the partitions on disk
    inputs: dict[int, pd.DataFrame] = field(default_factory=dict)  # MODEL_INPUTS per partition
    bad_spend: list[pd.Series] = field(default_factory=list)  # repeat buyers the spend model cannot take
    findings: dict[int, Findings] = field(default_factory=dict)  # per partition, until merged
    merged: Findings = field(default_factory=Findings)

    def keep(self, index: int, part: GatedPartition) -> None:
        """Put partition `index` on disk, keeping its model inputs, spend problems and findings."""
        self.inputs[index] = part.rfm[MODEL_INPUTS].astype("float64")
        self.bad_spend.append(spend_problems(part.rfm))
        self.findings[index] = part.findings
        self.kept.append(index)
        self.spill.put("read", index, (part.rfm, part.failures, part.reach, part.skipped))

    @property
    def indexes(self) -> list[int]:
        """The partitions kept, in partition order."""
        return sorted(self.kept)

    def take_model_inputs(self) -> pd.DataFrame:
        """Every partition's model inputs in partition order (the rows one process would fit on), let go of here.

        Taken, not copied: at 10M customers the inputs are 320 MiB, and the fit needs its own arrays too.
        """
        parts = [self.inputs.pop(i) for i in sorted(self.inputs)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=MODEL_INPUTS)

    def spend_problems(self) -> pd.Series:
        """Every repeat buyer without a positive mean order value, from every partition."""
        return pd.concat(self.bad_spend, ignore_index=True) if self.bad_spend else pd.Series(dtype=object)

    def all_findings(self) -> Findings:
        """The partitions' findings in one, in partition order: what the run's quarantine starts with.

        Merged once (each partition's are let go of then); the same object after, to which deciding adds.
        """
        for index in sorted(self.findings):
            self.merged.extend(self.findings.pop(index))
        return self.merged

    def check_orders_share(self, orders_table: str, max_bad_share: float) -> None:
        """The run's orders judged as a whole, as one process does: a DataError when too many are bad."""
        check_share(self.all_findings(), orders_table, max_bad_share)
