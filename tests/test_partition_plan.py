"""stages.partition_plan: which runs are partitioned, by how much, and on which cluster."""

from __future__ import annotations

import pytest

from winback.stages.partition_plan import DEFAULT_PARTITION_SIZE, LARGE_RUN, large_run_for, plan_partitions


def test_a_small_run_without_settings_reads_in_one_process() -> None:
    plan = plan_partitions(LARGE_RUN, partition_size=None, dask_address=None, cores=8)
    assert (plan.engine, plan.partition_size, plan.partitioned) == ("single", None, False)


@pytest.mark.parametrize("settings", [{}, {"partition_size": 700}, {"dask_address": "tcp://10.0.0.5:8786"}])
def test_every_plan_carries_the_customers_it_was_made_for(settings: dict) -> None:
    """The campaign sizes its sender processes by it before it decides (flows.campaign)."""
    options = {"partition_size": None, "dask_address": None, **settings}
    assert plan_partitions(2_000, cores=2, **options).customers == 2_000


def test_a_large_run_gets_a_local_cluster_of_one_worker_per_core_at_most_one_per_partition() -> None:
    plan = plan_partitions(10_000_000, partition_size=None, dask_address=None, cores=2)
    assert (plan.engine, plan.partition_size, plan.partitions, plan.workers) == ("local", 125_000, 80, 2)
    few = plan_partitions(250_001, partition_size=None, dask_address=None, cores=16, large_run=250_000)
    assert (few.partitions, few.workers) == (3, 3)


def test_a_partition_size_partitions_even_a_small_run() -> None:
    plan = plan_partitions(2_000, partition_size=700, dask_address=None, cores=4)
    assert (plan.engine, plan.partition_size, plan.partitions, plan.workers) == ("local", 700, 3, 3)


@pytest.mark.parametrize("customers", [0, 10, 5_000_000])
def test_an_address_sends_every_run_to_that_cluster(customers: int) -> None:
    plan = plan_partitions(customers, partition_size=None, dask_address="tcp://10.0.0.5:8786", cores=2)
    assert (plan.engine, plan.address, plan.workers, plan.partition_size) == (
        "address",
        "tcp://10.0.0.5:8786",
        0,
        DEFAULT_PARTITION_SIZE,
    )
    assert plan.partitions == max(1, -(-customers // DEFAULT_PARTITION_SIZE))


def test_a_run_one_process_would_hold_keeps_its_partitions_in_memory_a_larger_one_on_disk() -> None:
    held = plan_partitions(LARGE_RUN, partition_size=DEFAULT_PARTITION_SIZE, dask_address=None, cores=2)
    spilled = plan_partitions(LARGE_RUN + 1, partition_size=None, dask_address="tcp://10.0.0.5:8786", cores=2)
    assert (held.partitioned, held.in_memory) == (True, True)
    assert (spilled.partitioned, spilled.in_memory) == (True, False)


def test_a_sqlite_warehouse_is_partitioned_from_a_smaller_run_than_the_others() -> None:
    def engine(customers: int, dialect: str) -> str:
        return plan_partitions(
            customers, partition_size=None, dask_address=None, cores=2, large_run=large_run_for(dialect)
        ).engine

    assert [engine(500_000, d) for d in ("sqlite", "duckdb", "postgresql")] == ["local", "single", "single"]
    assert engine(250_000, "sqlite") == "single" and engine(1_000_001, "duckdb") == "local"
