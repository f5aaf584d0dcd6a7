"""Partitioned campaign runs on a 2-worker Dask LocalCluster with PostgreSQL state (flows/partitions.py).

The same as-of decided single-process and in partitions gives the same decisions, offers and outbox; a
worker killed with SIGKILL mid-partition changes nothing in the result; a partition broken by bad data
names itself and its first bad ids, and the other partitions finish.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF, _new_pg_database, imported_alongside
from prefect.settings import get_current_settings
from sqlalchemy import Engine, select, text

from winback.config import CampaignConfig
from winback.errors import DataError
from winback.stages import reads
from winback.stages.gathered import Gathered
from winback.warehouse.db import make_engine
from winback.warehouse.frames import frame_from_rows, raw_rows
from winback.warehouse.models import Decision, Offer, OutboxMessage
from winback.warehouse.source import SourceMapping, SourceTables

pytestmark = pytest.mark.postgres
distributed = pytest.importorskip("distributed")
CONFIG = CampaignConfig(campaign_id="partitioned", budget=3000.0, holdout_share=0.2)
PARTITION_SIZE = 700  # 2,000 demo customers: three partitions


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-threaded worker processes, as CI runs them."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


@pytest.fixture
def shop(postgres_server: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database migrated and holding the 2,000-customer demo warehouse."""
    yield from _demo_database(postgres_server)


def _demo_database(server: str) -> Iterator[Engine]:
    from winback.app.demo_data import generate_demo_warehouse
    from winback.warehouse.migrate import upgrade

    url = _new_pg_database(server)
    engine = make_engine(url)
    upgrade(url, engine=engine)
    generate_demo_warehouse(engine, customers=2000, seed=3, as_of=AS_OF, replace=True)
    yield engine
    engine.dispose()


def _run(engine: Engine, config: CampaignConfig = CONFIG) -> dict:
    from winback.flows.campaign import winback_campaign

    url = engine.url.render_as_string(hide_password=False)
    return winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)


def _partitioned(monkeypatch: pytest.MonkeyPatch, cluster: distributed.LocalCluster) -> None:
    monkeypatch.setenv("WINBACK_DASK_ADDRESS", cluster.scheduler_address)
    monkeypatch.setenv("WINBACK_PARTITION_SIZE", str(PARTITION_SIZE))


def _outcome(engine: Engine) -> dict[str, pd.DataFrame]:
    """What a run decided, offered and queued; not what differs by construction (row ids, random offer codes).

    The bodies quote the offer codes, so they are left out too.
    """
    queries = {
        "decisions": select(
            Decision.customer_id,
            Decision.segment,
            Decision.action,
            Decision.arm,
            Decision.failure_id,
            Decision.offer_kind,
            Decision.offer_value,
            Decision.offer_cost,
            Decision.channel,
            Decision.reason,
            Decision.p_active,
            Decision.customer_value,
            Decision.variant,
        ),
        "offers": select(Offer.customer_id, Offer.kind, Offer.value, Offer.expected_cost),
        "outbox": select(
            OutboxMessage.id,
            OutboxMessage.customer_id,
            OutboxMessage.step,
            OutboxMessage.channel,
            OutboxMessage.template,
            OutboxMessage.status,
            OutboxMessage.subject,
        ),
    }
    with engine.connect() as conn:
        frames = {}
        for name, query in queries.items():
            columns = [c.name for c in query.selected_columns]
            frame = frame_from_rows(raw_rows(conn, query), columns, {})
            frames[name] = frame.sort_values(columns[:2]).reset_index(drop=True)
    return frames


def _assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for name in left:
        assert len(left[name]) > 0, name
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=False, rtol=1e-9, obj=name)


@pytest.fixture(scope="module")
def single_process_outcome(postgres_server: str) -> dict[str, pd.DataFrame]:
    """The reference: the same as-of decided, offered and queued in one process."""
    for engine in _demo_database(postgres_server):
        result = _run(engine)
        assert result["batches"] == 1  # 2,000 customers, no settings: one batch, read in this process
        return _outcome(engine)
    raise AssertionError("no database")


def test_partitioned_run_makes_the_single_process_decisions(
    shop: Engine,
    cluster: distributed.LocalCluster,
    single_process_outcome: dict[str, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _partitioned(monkeypatch, cluster)
    started = time.time()
    released_when_kept: list[int] = []
    keep = Gathered.keep

    def keep_once_released(self: Gathered, index: int, part: reads.GatedPartition) -> None:
        """Wait until the cluster has let go of as many partitions as the flow has taken, this one included.

        The flow is held here, so a run that released its partitions only once all were taken never would.
        """
        deadline = time.monotonic() + 30
        while len(_released(cluster, started)) <= len(released_when_kept) and time.monotonic() < deadline:
            time.sleep(0.02)
        released_when_kept.append(len(_released(cluster, started)))
        keep(self, index, part)

    monkeypatch.setattr(Gathered, "keep", keep_once_released)
    result = _run(shop)
    assert result["batches"] == 3
    _assert_same(single_process_outcome, _outcome(shop))
    # the calibration check ran in the flow's process while the workers read, and is stored with the model
    assert result["model"]["calibration"]["customers"] > 0
    assert {str(step.key).split("-")[0] for step in _transitions(cluster, started, "")} == {"read_partition"}
    assert len(_times_handed_to_a_worker(cluster, started, "read_partition")) == 3
    # a partition's result is let go of on its worker once fetched, not kept until every partition is done
    assert released_when_kept == [1, 2, 3]


def test_a_run_that_dies_between_partitions_resumes_to_the_same_outcome(
    shop: Engine,
    cluster: distributed.LocalCluster,
    single_process_outcome: dict[str, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first attempt dies once its second partition's decisions and codes are committed, before their
    messages are queued. The re-run keeps what was stored, stores the third partition, queues the second's
    and the third's messages: the decisions, offers and outbox of a run never interrupted."""
    from winback.stages import decide_and_send

    _partitioned(monkeypatch, cluster)
    queue, calls = decide_and_send.queue_contacts, []

    def dies_at_the_second(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("flow process lost")
        return queue(*args, **kwargs)

    monkeypatch.setattr(decide_and_send, "queue_contacts", dies_at_the_second)
    with pytest.raises(RuntimeError, match="flow process lost"):
        _run(shop)
    with shop.connect() as conn:
        first = dict(conn.execute(select(Decision.customer_id, Decision.id)).all())
        codes = dict(conn.execute(select(Offer.customer_id, Offer.code)).all())
        queued = conn.execute(select(OutboxMessage.customer_id)).scalars().all()
    assert 0 < len(queued) < len(codes) + len(first)  # the first partition queued, the second not
    assert 0 < len(first) < len(single_process_outcome["decisions"])
    monkeypatch.setattr(decide_and_send, "queue_contacts", queue)
    result = _run(shop)
    _assert_same(single_process_outcome, _outcome(shop))
    with shop.connect() as conn:
        kept = dict(conn.execute(select(Decision.customer_id, Decision.id)).all())
        kept_codes = dict(conn.execute(select(Offer.customer_id, Offer.code)).all())
    assert {c: kept[c] for c in first} == first and {c: kept_codes[c] for c in codes} == codes  # not made again
    assert result["messages_queued"] == len(single_process_outcome["outbox"]) - len(queued)


def test_a_partitioned_dry_run_counts_what_one_process_counts(
    shop: Engine, cluster: distributed.LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dry = CONFIG.model_copy(update={"dry_run": True})
    single = _run(shop, dry)["dry_run"]
    _partitioned(monkeypatch, cluster)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the partitions are kept between steps
    heartbeats: list[int | None] = []  # the reads' subflow's setting, as each partition arrives there
    keep = Gathered.keep

    def keep_noting_heartbeats(self: Gathered, index: int, part: reads.GatedPartition) -> None:
        heartbeats.append(get_current_settings().flows.heartbeat_frequency)
        keep(self, index, part)

    monkeypatch.setattr(Gathered, "keep", keep_noting_heartbeats)
    result = _run(shop, dry)
    assert result["batches"] == 3
    # the subflow leaves heartbeats to the campaign flow, in the same process: its exit does not wait on them
    assert heartbeats == [None, None, None] and get_current_settings().flows.heartbeat_frequency is not None
    spread = result["dry_run"]
    assert spread["decisions"]["contact"] > 0 and spread["offer_cost"] > 0
    for key in ("decisions", "by_segment_and_action", "contacts_by_segment_and_channel", "offers", "offer_cost"):
        assert spread[key] == single[key], key
    assert len(spread["sample_reasons"]) == 5
    assert all(reason.startswith("contact") for reason in spread["sample_reasons"])
    assert list(tmp_path.iterdir()) == []  # nothing left behind


class _ClusterSteps:
    """A run's own temporary clusters, and its steps as they happen: (step, thread), in order.

    Each stop in the background thread waits `STOP_DELAY` seconds first, so a run that did not wait for it
    would be seen to let go of its partitions before the stop ended.
    """

    STOP_DELAY = 3.0

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from winback.flows import partitions
        from winback.stages import decide_and_send
        from winback.stages.gathered import PartitionSpill

        self.made: list[distributed.LocalCluster] = []
        self.steps: list[tuple[str, str]] = []
        start, stop = partitions.start_local_cluster, distributed.LocalCluster.close
        decide, spill_close = decide_and_send.decide_and_send_partitioned_run, PartitionSpill.close

        def start_noting(plan):  # type: ignore[no-untyped-def]
            self.made.append(start(plan))
            return self.made[-1]

        def stop_noting(cluster, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.note("stop begins")
            if threading.current_thread().name == "winback-dask-close":
                time.sleep(self.STOP_DELAY)
            stop(cluster, *args, **kwargs)
            self.note("stop ends")

        def decide_noting(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.note("decide begins")
            return decide(*args, **kwargs)

        def spill_close_noting(spill):  # type: ignore[no-untyped-def]
            spill_close(spill)
            self.note("partitions let go of")

        monkeypatch.setenv("WINBACK_PARTITION_SIZE", str(PARTITION_SIZE))
        monkeypatch.delenv("WINBACK_DASK_ADDRESS", raising=False)
        monkeypatch.setattr(partitions, "start_local_cluster", start_noting)
        monkeypatch.setattr(distributed.LocalCluster, "close", stop_noting)
        monkeypatch.setattr(decide_and_send, "decide_and_send_partitioned_run", decide_noting)
        monkeypatch.setattr(PartitionSpill, "close", spill_close_noting)

    def note(self, step: str) -> None:
        self.steps.append((step, threading.current_thread().name))

    def first(self, step: str) -> tuple[str, str, int]:
        """The first `step`: its name, its thread and its place."""
        place = [name for name, _ in self.steps].index(step)
        return (*self.steps[place], place)


def test_a_run_on_its_own_temporary_cluster_stops_it_while_deciding(
    shop: Engine, single_process_outcome: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No address: the run starts a local cluster, and stops it in the background once the partitions are in."""
    seen = _ClusterSteps(monkeypatch)
    result = _run(shop)
    assert result["batches"] == 3 and len(seen.made) == 1
    _assert_same(single_process_outcome, _outcome(shop))
    assert seen.made[0].status.name == "closed"
    stop_begins, stop_ends = seen.first("stop begins"), seen.first("stop ends")
    # the stop began in its own thread before the run decided, and the run waited for its end
    assert stop_begins[1] == stop_ends[1] == "winback-dask-close"
    assert stop_begins[2] < seen.first("decide begins")[2]
    assert stop_ends[2] < seen.first("partitions let go of")[2]


def test_a_temporary_cluster_is_stopped_before_a_failed_read_raises(
    shop: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition of bad data: the run's own cluster is stopped in the run's thread, then the error goes on."""
    seen = _ClusterSteps(monkeypatch)
    with shop.begin() as conn:
        conn.execute(text("ALTER TABLE customers ALTER COLUMN fraud_flag TYPE text USING fraud_flag::text"))
        conn.execute(text("UPDATE customers SET fraud_flag = 'maybe'"))
    with pytest.raises(DataError, match="3 of 3 partitions failed for bad data"):
        _run(shop)
    assert len(seen.made) == 1 and seen.made[0].status.name == "closed"
    assert seen.first("stop begins")[1] != "winback-dask-close"
    assert "decide begins" not in [name for name, _ in seen.steps]


def test_a_worker_killed_mid_partition_changes_nothing(
    shop: Engine,
    cluster: distributed.LocalCluster,
    single_process_outcome: dict[str, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The orders table is locked, so every partition waits in its first read; one worker is then killed."""
    _partitioned(monkeypatch, cluster)
    killed: list[int] = []
    errors: list[BaseException] = []
    started = time.time()
    with shop.connect() as lock:
        lock.execute(text("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
        killer = threading.Thread(target=_kill_a_busy_worker, args=(cluster, lock, killed, errors))
        killer.start()
        try:
            result = _run(shop)
        finally:
            killer.join(timeout=120)
            if lock.in_transaction():
                lock.rollback()
    assert not errors, errors
    assert len(killed) == 1
    assert result["batches"] == 3
    _assert_same(single_process_outcome, _outcome(shop))
    # the scheduler handed the killed worker's partitions (the one it ran, maybe one queued behind it) to the
    # other worker once each: every partition ran to the end once more than it was killed
    handed = _times_handed_to_a_worker(cluster, started, "read_partition")
    assert len(handed) == 3
    assert sorted(handed.values())[-1] == 2 and set(handed.values()) <= {1, 2}


def _transitions(cluster: distributed.LocalCluster, since: float, task: str) -> list:
    """The scheduler's transitions of `task`'s runs since `since` (its transition log)."""
    log = list(cluster.scheduler.transition_log)  # a copy: the scheduler's loop may be adding to it
    return [step for step in log if step.timestamp >= since and str(step.key).startswith(task)]


def _released(cluster: distributed.LocalCluster, since: float) -> set[str]:
    """The partitions whose results the cluster has let go of since `since`."""
    steps = _transitions(cluster, since, "read_partition")
    return {step.key for step in steps if step.start == "memory" and step.finish in {"released", "forgotten"}}


def _times_handed_to_a_worker(cluster: distributed.LocalCluster, since: float, task: str) -> Counter[str]:
    """How many times the scheduler gave each run of `task` to a worker since `since`."""
    return Counter(step.key for step in _transitions(cluster, since, task) if step.finish == "processing")


def _kill_a_busy_worker(cluster, lock, killed: list[int], errors: list[BaseException]) -> None:  # type: ignore[no-untyped-def]
    """Once both workers hold a task (blocked on the lock), SIGKILL one reading a partition, then release the lock."""
    try:
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            deadline = time.monotonic() + 90
            while True:
                busy = [addr for addr, keys in client.processing().items() if keys]
                if len(busy) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert len(busy) == 2, f"the partitions never reached the workers: {client.processing()}"
            time.sleep(0.5)  # inside the blocked read, not just handed the task
            # a worker reading a partition (both are, unless the scheduler has a third task for one of them)
            reading = [addr for addr, keys in client.processing().items()
                       if any(str(key).startswith("read_partition") for key in keys)]  # fmt: skip
            pid = client.run(os.getpid, workers=[reading[0]])[reading[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    except BaseException as exc:  # reported by the test, not lost in this thread
        errors.append(exc)
    finally:
        lock.rollback()  # releases the lock either way: the run must not hang


def test_a_partition_of_bad_data_names_itself_and_its_first_ids_while_the_others_finish(
    shop: Engine, cluster: distributed.LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _partitioned(monkeypatch, cluster)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    src = SourceTables(SourceMapping())
    low, high = reads.plan_batches(shop, src, PARTITION_SIZE)[1]
    with shop.begin() as conn:
        conn.execute(text("ALTER TABLE customers ALTER COLUMN fraud_flag TYPE text USING fraud_flag::text"))
        conn.execute(
            text("UPDATE customers SET fraud_flag = 'maybe' WHERE customer_id >= :low AND customer_id < :high"),
            {"low": low, "high": high},
        )
        first = conn.execute(
            text("SELECT min(customer_id) FROM customers WHERE customer_id >= :low"), {"low": low}
        ).scalar_one()
    with pytest.raises(DataError) as raised:
        _run(shop)
    message = str(raised.value)
    assert f"partition 1 (customer ids from {low!r} to before {high!r})" in message
    assert "1 of 3 partitions failed for bad data (the other 2 finished)" in message
    assert f"first {first} (fraud_flag" in message
    assert "partition 0" not in message and "partition 2" not in message
    assert list(tmp_path.iterdir()) == []  # the partitions read were kept on disk, and are removed


def test_a_temporary_clusters_workers_run_without_dasks_statistical_profiler() -> None:
    """The cluster a partitioned run starts for itself: its workers sample no stacks for a dashboard."""
    import dask

    from winback.flows.partitions import local_cluster_kwargs
    from winback.stages.partition_plan import PartitionPlan

    kwargs = local_cluster_kwargs(PartitionPlan("local", PARTITION_SIZE, 3, 2))
    with distributed.LocalCluster(**kwargs) as local, distributed.Client(local) as client:
        enabled = client.run(dask.config.get, "distributed.worker.profile.enabled")
        callbacks = client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks))
    assert len(enabled) == 2 and set(enabled.values()) == {False}
    assert all("profile" not in names and "heartbeat" in names for names in callbacks.values())


def test_the_module_a_worker_imports_for_a_partition_holds_the_read_path_alone() -> None:
    """A worker of a temporary cluster imports the task's module at its first partition: in every run."""
    heavy = ("winback.stages.partitioned", "winback.stages.deciding", "winback.segments", "scipy", "sklearn")
    module = "winback.flows.partition_reads"
    assert imported_alongside(module, "read_partition", heavy) == (module, [])


def test_the_module_of_the_reads_subflow_holds_no_deciding_either() -> None:
    """Prefect sends the subflow itself with every partition's context: each worker imports its module too.

    It loaded the deciding path (scikit-learn, SciPy, the senders) into every worker: 1.5 s of a worker's
    first partition here.
    """
    heavy = (
        "winback.stages.partitioned",
        "winback.stages.deciding",
        "winback.stages.campaign",
        "winback.segments.scoring",
        "winback.segments.decision",
        "winback.delivery",
        "scipy",
        "sklearn",
        "twilio",
    )
    module = "winback.flows.partitions"
    assert imported_alongside(module, "read_partitions", heavy) == (module, [])
