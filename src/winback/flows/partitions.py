"""A large campaign run's reads, context and summaries as partitions on Dask (prefect-dask).

The customers are cut into id ranges (`WINBACK_PARTITION_SIZE` each, see stages.partition_plan); each
partition is one Prefect task (flows.partition_reads) that opens the warehouse itself, reads only its own
customers, and returns per-customer summaries judged on their own (the data-quality gate), never orders.
The flow keeps each on local disk as it arrives (stages.gathered), so its memory does not grow with the
run; a run one process would hold whole keeps them in memory.

The subflow's task runner is chosen at run time: the cluster at `WINBACK_DASK_ADDRESS`, else a temporary
`LocalCluster` of one worker process per core. A worker killed mid-partition costs a retry of that
partition; a partition that fails for bad data names itself and its first bad ids once the others have
finished. The global model fit, the budget walk and the storing of the decisions stay in the flow
(stages.partitioned), as does the activity model's calibration check (a fit on the first 25,000 customers,
in a thread of the campaign flow while it waits for the partitions: not a partition, so not a task that
holds a worker while partitions wait).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from typing import Any

import distributed
from distributed import as_completed as dask_completed
from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from winback.errors import DataError
from winback.flows.child_api import same_api_for_children
from winback.flows.partition_reads import read_partition
from winback.stages.gathered import Gathered, PartitionSpill
from winback.stages.partition_plan import PartitionPlan
from winback.warehouse.quality import QualityRules
from winback.warehouse.source import SourceTables
from winback.warehouse.summaries import IdRange


@flow(name="winback-partitions", log_prints=True)
def read_partitions(
    url: str,
    src: SourceTables,
    as_of: dt.datetime,
    ranges: list[IdRange],
    lookback_days: int,
    rules: QualityRules,
    in_memory: bool = False,
) -> Gathered:
    """Every partition read on the flow's Dask cluster and kept as it arrives (on disk, or `in_memory`).

    All partitions run to the end even when some fail; then one DataError lists those that failed for bad
    data (each with its first bad ids), or the first other failure is raised, and what was kept is removed.
    """
    futures = [
        read_partition.submit(url, src, as_of, index, id_range, lookback_days, rules)
        for index, id_range in enumerate(ranges)
    ]
    gathered = Gathered(PartitionSpill(on_disk=not in_memory))
    try:
        failed = []
        for index, outcome in _finished(futures):
            if isinstance(outcome, BaseException):
                failed.append(outcome)
            else:
                gathered.keep(index, outcome)
        bad_data = [str(exc) for exc in failed if isinstance(exc, DataError)]
        if bad_data:
            finished = len(ranges) - len(failed)
            raise DataError(
                f"{len(bad_data)} of {len(ranges)} partitions failed for bad data (the other {finished} finished): "
                + " | ".join(bad_data)
            )
        if failed:
            raise failed[0]
        return gathered
    except BaseException:
        gathered.spill.close()
        raise


def _finished(futures: list[PrefectDaskFuture[Any]]) -> Iterator[tuple[int, Any]]:
    """Each partition's index and outcome (its reads, or its exception), as it finishes.

    Nothing here keeps a partition once the caller has taken it. A finished task's result stays on its
    worker while a Dask future refers to it, so each is released on the cluster once fetched (fetched at
    the end, a 10M run's 80 partitions piled up on two workers, 2.3 GiB each). And a Prefect future keeps
    the result it fetched, as does Prefect's `as_completed` every future it was given until the last one is
    done (a 10M run's flow held 2.9 GiB of partitions): each result is fetched through a Prefect future of
    its own, dropped with the partition, while Dask's `as_completed` lets go of each future it hands over.
    """
    slot = {future.wrapped_future.key: (index, future.task_run_id) for index, future in enumerate(futures)}
    wrapped = [future.wrapped_future for future in futures]
    if not wrapped:
        return
    # the task runner's client is not Dask's default one: its loop is named
    for finished in dask_completed(wrapped, loop=wrapped[0].client.loop):
        index, task_run_id = slot[finished.key]
        try:
            outcome = PrefectDaskFuture(task_run_id, finished).result(raise_on_failure=False)
        except Exception as exc:  # Dask's own failure (a worker lost too often): the others still finish
            outcome = exc
        finished.release()
        yield index, outcome


def start_local_cluster(plan: PartitionPlan) -> distributed.LocalCluster:
    """A temporary cluster for one run: one single-threaded worker process per planned worker.

    The reads hold the GIL while rows are handed over, so threads of one process would take turns. The run
    starts it, not prefect-dask's task runner: a task runner closes a cluster it made as its flow ends, while
    the run waits; and a flow runs a copy of its task runner (`duplicate`) that keeps an address, not a
    cluster object, so the task runner is given the cluster's address.
    """
    return distributed.LocalCluster(**local_cluster_kwargs(plan))


def local_cluster_kwargs(plan: PartitionPlan) -> dict[str, Any]:
    """`LocalCluster`'s arguments for a plan's temporary cluster."""
    cluster: dict[str, Any] = {"n_workers": plan.workers, "threads_per_worker": 1, "processes": True}
    quiet = {"dashboard_address": ":0", "silence_logs": logging.ERROR}  # the same in the worker processes
    return {**cluster, **quiet, "config": LOCAL_WORKER_CONFIG}


# Dask configuration for the workers of a temporary cluster. Dask's statistical profiler samples each
# worker's stack every 10 ms for the dashboard's profile page, which nobody reads on a cluster that lives
# for one run: 15 % of the partitions' time here (bench/scale.py, 1M customers on 2 workers: the tasks'
# summed time 36.5 s with it, 31.1 s without; docs/benchmark-history.md). A long-lived cluster is its
# operator's to configure (docs/scale.md).
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


def partitioned_reads(
    plan: PartitionPlan,
    url: str,
    src: SourceTables,
    as_of: dt.datetime,
    ranges: list[IdRange],
    lookback_days: int,
    rules: QualityRules,
) -> Gathered:
    """`read_partitions` as a subflow on the plan's Dask cluster; the caller closes the gathered spill.

    A temporary cluster is closed in the background once the partitions are in (about 1 s of stopping
    processes, while the run fits and decides on one core); closing the gathered spill waits for it, so
    no worker outlives the run's use of what they read. After a failure it is closed before the error goes on.

    The subflow sends no heartbeats of its own: it runs in the campaign flow's process, whose heartbeats
    say that process is alive, and a synchronous flow's exit waits for its heartbeat thread's current
    one-second sleep (0.5 s on average, in every partitioned run; ../shared/PREFECT.md).
    """
    # Dask's own INFO lines (a cluster's start and stop, a closed comm at shutdown) reach the user's terminal
    # through Prefect's root handler; a partition's failure reaches the flow as its task's error anyway
    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = start_local_cluster(plan) if plan.address is None else None
    try:
        address = cluster.scheduler_address if cluster is not None else plan.address
        subflow = read_partitions.with_options(task_runner=DaskTaskRunner(address=address))
        with same_api_for_children(), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            gathered = subflow(url, src, as_of, ranges, lookback_days, rules, plan.in_memory)
    except BaseException:
        if cluster is not None:
            _close_quietly(cluster)  # the read's own error is the one to raise
        raise
    if cluster is None:
        return gathered
    try:
        closing = threading.Thread(target=_close_quietly, args=(cluster,), name="winback-dask-close")
        closing.start()
        gathered.spill.wait_on_close(closing.join)
    except BaseException:
        _close_quietly(cluster)
        gathered.spill.close()
        raise
    return gathered


def _close_quietly(cluster: distributed.LocalCluster) -> None:
    """Close a run's temporary cluster; a failure to stop it is one warning, not the run's failure."""
    try:
        cluster.close()
    except Exception as exc:  # the partitions are in: what is left is Dask's own clean-up
        logging.getLogger(__name__).warning("the temporary Dask cluster did not close cleanly: %s", exc)
