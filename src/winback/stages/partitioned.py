"""A partitioned run's scoring and decisions, one partition at a time, so the flow's memory does not grow with the run.

Each partition arrives read and gated on its own (`reads.read_partition`, on a Dask worker). The flow keeps
it on local disk (`PartitionSpill`; in memory for a run of at most `partition_plan.LARGE_RUN` customers)
and holds in memory only what the run-wide steps need: the model inputs (`scoring.MODEL_INPUTS`, 32 bytes a
customer) for the one fit, and later each eligible customer's place in the budget walk
(`budget_walk.WALK_COLUMNS`). Then:

1. the models are fitted once on every partition's inputs, gathered in partition order, so the fit is the
   one a single process makes on the same customers;
2. each partition is scored with that fit and priced (`deciding.price_part`), and put back on disk;
3. the holdout and the budget walk run once over every partition's eligible customers;
4. each partition is finished (`deciding.finish_part`) and handed to the caller, who stores it (in one
   transaction for the whole run) or counts it (a dry run).

The decisions are those one process makes for the same as-of: every step outside 1 and 3 is customer by
customer, and 1 and 3 see every customer.
"""

from __future__ import annotations

import datetime as dt
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy
from winback.segments.scoring import MODEL_INPUTS, Scorer, apply_scorer, spend_problems
from winback.stages import deciding
from winback.stages.campaign import RunHandle, preview_summary, store_decisions, with_gate_skips
from winback.stages.preview import PreviewTally
from winback.stages.reads import GatedPartition
from winback.warehouse.quality import Findings, check_share
from winback.warehouse.source import SourceTables


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


def decide_partitions(
    warehouse: Engine,
    src: SourceTables,
    context: deciding.DecisionContext,
    scorer: Scorer,
    gathered: Gathered,
    findings: Findings,
) -> Iterator[pd.DataFrame]:
    """Each partition's decisions, in partition order, one at a time (see the module); set-asides to `findings`."""
    economics, spill, indexes = context.config.economics, gathered.spill, gathered.indexes
    walks: dict[int, pd.DataFrame] = {}
    with warehouse.connect() as conn:
        for index in indexes:
            rfm, failures, reach, skipped = spill.take("read", index)
            scored = apply_scorer(rfm, scorer, economics)
            part = deciding.price_part(conn, src, context, scored, failures, reach, findings)
            walks[index] = part.priced.walk
            spill.put("priced", index, (part, skipped))
            del rfm, failures, reach, scored, part
        walk = pd.concat(walks, names=["partition", "row"])
        del walks
        selected, ranked_of = deciding.select(context, walk), len(walk)
        del walk
        for index in indexes:
            part, skipped = spill.take("priced", index)
            mine = _rows_of(selected, index)
            decisions = deciding.finish_part(conn, src, context, part, mine, ranked_of, findings)
            yield with_gate_skips(decisions, skipped)


def _rows_of(selected: pd.DataFrame, index: int) -> pd.DataFrame:
    """The walk's verdict on partition `index`'s customers, indexed as that partition's priced frame."""
    try:
        return selected.xs(index, level="partition")
    except KeyError:  # none of its customers is eligible
        return selected.iloc[:0].droplevel("partition")


def decide_partitioned_run(
    session: Session,
    run: RunHandle,
    gathered: Gathered,
    scorer: Scorer,
    config: CampaignConfig,
    policy: CompensationPolicy,
    model: dict[str, Any],
    *,
    src: SourceTables,
) -> dict[str, int]:
    """Decide every partition and store the decisions, all in the caller's transaction: counts by action."""
    conn = session.connection()
    context = deciding.decision_context(conn, run.as_of, run.run_id, config, policy, typical_gap=scorer.typical_gap)
    findings = gathered.all_findings()
    parts = decide_partitions(src.reader(conn.engine), src, context, scorer, gathered, findings)
    return store_decisions(session, run, parts, findings, model, context.lifts, context.uplift_summary)


def preview_partitioned_run(
    engine: Engine,
    as_of: dt.datetime,
    gathered: Gathered,
    scorer: Scorer,
    config: CampaignConfig,
    policy: CompensationPolicy,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """A partitioned dry run: what `stages.campaign.preview_run` reports, counted partition by partition."""
    with engine.connect() as conn:
        context = deciding.decision_context(conn, as_of, None, config, policy, typical_gap=scorer.typical_gap)
    findings = gathered.all_findings()
    tally = PreviewTally()
    for decisions in decide_partitions(src.reader(engine), src, context, scorer, gathered, findings):
        tally.add(decisions)
    return preview_summary(tally, config, context.lifts, context.uplift_summary, findings)
