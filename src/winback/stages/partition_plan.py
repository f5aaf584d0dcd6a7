"""How a campaign run's reads are spread: one process, a temporary local Dask cluster, or an existing one.

Pure arithmetic on the run's size and the settings, so the choice is testable without a cluster. The flow
(flows/partitions.py) turns the plan into a Dask task runner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# above this many customers a run is partitioned by default. One process reads faster on a small machine
# (1M customers, 2 cores, DuckDB warehouse: 5.1 s in one process, 11.6 s in 2 partitions, 17.7 s in 8: DuckDB
# is multi-threaded already, and each partition scans the orders of its id range), but it holds every
# customer's rows: 1.6-2.0 GiB at 1M (bench/campaign.py), while a partitioned run's flow stays under 2 GiB
# at 10M (bench/scale.py; docs/benchmarks.md). So one process up to 1M, partitions beyond
LARGE_RUN = 1_000_000
# a SQLite warehouse answers each query on one core, so partitions on every core repay the cluster's start
# sooner: at 250,000 customers one process and 2 partitions were even (bench/campaign.py --warehouse sqlite,
# 2 cores: 32.9 s against 30.6 s end to end), at 500,000 partitions were quicker (39.3 s against 43.8 s),
# and at 1M (91.8 s against 102.9 s). PostgreSQL's crossover is not measured: it keeps LARGE_RUN
LARGE_RUN_BY_DIALECT = {"sqlite": 250_000}
# customers per partition when none is set: at least two partitions per large run, so two workers share it,
# and a worker's peak stays under 0.5 GiB (bench/scale.py; docs/benchmarks.md)
DEFAULT_PARTITION_SIZE = 125_000


def large_run_for(dialect: str) -> int:
    """Above how many customers a run on a warehouse of this SQLAlchemy dialect is partitioned by default."""
    return LARGE_RUN_BY_DIALECT.get(dialect, LARGE_RUN)


@dataclass(frozen=True)
class PartitionPlan:
    """Where a run's reads go: `engine` "single" (this process), "local" (a temporary cluster) or "address"."""

    engine: Literal["single", "local", "address"]
    partition_size: int | None
    partitions: int
    workers: int
    address: str | None = None
    # whether the flow holds the partitions in memory between its steps rather than on local disk: a run
    # one process would hold whole anyway (at most LARGE_RUN customers), see stages.gathered
    in_memory: bool = False
    customers: int = 0  # rows in the customers table when planned: what the run's later steps size by

    @property
    def partitioned(self) -> bool:
        """Whether the reads run as partitions on Dask."""
        return self.engine != "single"


def plan_partitions(
    customers: int,
    *,
    partition_size: int | None,
    dask_address: str | None,
    cores: int,
    large_run: int = LARGE_RUN,
) -> PartitionPlan:
    """The plan for a run of `customers`: partitioned when an address or a size is given, or the run is large.

    Parameters
    ----------
    customers
        Rows in the customers table.
    partition_size
        `WINBACK_PARTITION_SIZE`, or None.
    dask_address
        `WINBACK_DASK_ADDRESS`, or None.
    cores
        CPUs of this machine: a temporary local cluster gets one worker process per core, never more
        workers than partitions.
    large_run
        Above this many customers a run is partitioned even with neither setting.

    Returns
    -------
    PartitionPlan
        "single" with no partition size for a small run without settings; else the partition size, how
        many partitions it makes, and the workers of a local cluster (0 for an existing one: its own).
    """
    if dask_address is None and partition_size is None and customers <= large_run:
        return PartitionPlan("single", None, 1, 1, customers=customers)
    size = partition_size or DEFAULT_PARTITION_SIZE
    partitions = max(1, math.ceil(customers / size))
    in_memory = customers <= LARGE_RUN
    if dask_address is not None:
        return PartitionPlan("address", size, partitions, 0, dask_address, in_memory, customers)
    workers = max(1, min(cores, partitions))
    return PartitionPlan("local", size, partitions, workers, in_memory=in_memory, customers=customers)
