"""Many senders on Prefect (flows.sending): N `send_outbox` task runs, each message once, the rates shared.

- `dispatch_outbox(senders=2)`: one sender in the flow, one a task run in a process of Prefect's pool; every
  message sent exactly once (the sink's journal), on SQLite and PostgreSQL (FOR UPDATE SKIP LOCKED).
- the campaign flow with a large run (the threshold lowered): a sender task follows the queueing, in the
  process the flow started before it decided (`SenderProcesses`), which the senders' join stops.
- the modules a sender process imports (its task's and its flow's) leave the CRM recovery out.
- `queue_and_send_run` with senders started by the caller: they send partitions already committed while the
  rest is still being queued (the stage, without Prefect).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from conftest import AS_OF, LINKS, imported_alongside, local_source, local_tables, send_setup
from crash_sender import queue_messages
from prefect import flow
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from winback.channels.sink import SinkChannel
from winback.config import CampaignConfig
from winback.delivery import senders as senders_module
from winback.delivery.dispatch import DispatchReport, SendLimits
from winback.delivery.senders import SenderJob, run_sender, senders_for
from winback.flows.sending import SenderProcesses
from winback.stages import campaign as stages
from winback.warehouse.models import Decision, OutboxMessage

NOW = AS_OF + dt.timedelta(days=1)
FAST = SendLimits(email_per_second=1e6, sms_per_second=1e6, concurrency=4, senders=3)


def claimers(engine: Engine, run_id: int) -> Counter[str]:
    """host:pid of the sender that claimed each row, counted."""
    with engine.connect() as conn:
        tokens = conn.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.run_id == run_id)).scalars()
        return Counter(token.rsplit(":", 1)[0] for token in tokens if token)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def claimers_pids(engine: Engine, run_id: int) -> Counter[int]:
    """The pid of the sender that claimed each row, counted."""
    with engine.connect() as conn:
        tokens = conn.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.run_id == run_id)).scalars()
        return Counter(int(token.split(":")[1]) for token in tokens if token)


def statuses(engine: Engine, run_id: int) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(conn.execute(select(OutboxMessage.status).where(OutboxMessage.run_id == run_id)).scalars())


def test_senders_for_grows_with_the_send_up_to_the_setting() -> None:
    limits = SendLimits(senders=3)
    assert senders_for(50, limits) == 1
    assert senders_for(2 * senders_module.MIN_MESSAGES_PER_SENDER, limits) == 2
    assert senders_for(10**7, limits) == 3


def test_dispatch_outbox_with_two_senders_sends_each_message_once(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from winback.flows.dispatch import dispatch_outbox

    sink_path = tmp_path / "sink.jsonl"
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))  # the sender process inherits it
    total = 2000
    recipients = [(f"P{i:05d}", "email" if i % 10 else "sms", f"customer.{i}@example.com") for i in range(total)]
    recipients = [(c, ch, a if ch == "email" else f"+4479111{i:05d}") for i, (c, ch, a) in enumerate(recipients)]
    run = queue_messages(engine, recipients, AS_OF, campaign_id="senders", offers=True)
    url = engine.url.render_as_string(hide_password=False)

    result = dispatch_outbox(now=NOW, database_url_override=url, senders=2, sweep_crm_events=False)

    assert result["sent"] == total
    assert statuses(engine, run.run_id) == {"sent": total}
    journal = Counter(record["message_id"] for record in SinkChannel(sink_path).records())
    assert len(journal) == total and set(journal.values()) == {1}


@flow
def send_from_warm_processes(url: str, total: int) -> tuple[list[int], dict[str, int]]:
    """A sender process started, then `total` messages queued, then sent by it (a flow: its runner needs one)."""
    from winback.warehouse.db import engine_for

    recipients = [(f"W{i:05d}", "email", f"customer.{i}@example.com") for i in range(total)]
    with SenderProcesses(url, local_tables()) as processes:
        processes.warm(1)
        ready = processes.ready_pids()  # started before a single message is queued
        run = queue_messages(engine_for(url), recipients, AS_OF, campaign_id="ahead", offers=True)
        report = processes.start(SenderJob(run.run_id, "ahead", NOW, FAST), 1)()
        stopped = not pid_alive(ready[0])  # by the senders' join: a retry's reconcile must find it gone
    return ready, {**report.as_dict(), "stopped": stopped}


@flow
def send_after_the_process_died(url: str) -> str:
    """A sender process started, then killed before the send: what the senders' join raises."""
    with SenderProcesses(url, local_tables()) as processes:
        processes.warm(1)
        os.kill(processes.ready_pids()[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(processes.ready_pids()[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            processes.start(SenderJob(None, "died", NOW, FAST), 1)()
        except Exception as exc:
            return type(exc).__name__
    return "nothing raised"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sender_process_that_died_before_the_send_fails_its_senders_at_once(engine: Engine) -> None:
    """Its pool is broken: the join raises (the send's task is then retried on fresh processes), never hangs."""
    assert send_after_the_process_died(engine.url.render_as_string(hide_password=False)) == "BrokenProcessPool"


def test_a_sender_process_started_ahead_is_the_one_that_sends(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SenderProcesses.warm` starts a sender process before anything is due (the campaign does, before it
    decides); the send that follows runs in that process, not in one started then, and sends each message
    once; the senders' join stops it. Starting a fresh pool at the send, as before, fails the pid check."""
    sink_path = tmp_path / "sink.jsonl"
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))  # the sender process inherits it
    total = 300

    ready, report = send_from_warm_processes(engine.url.render_as_string(hide_password=False), total)

    assert report["sent"] == total and report["stopped"]
    with engine.connect() as conn:
        tokens = set(conn.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.status == "sent")).scalars())
    assert {token.split(":")[1] for token in tokens} == {str(ready[0])}
    journal = Counter(record["message_id"] for record in SinkChannel(sink_path).records())
    assert len(journal) == total and set(journal.values()) == {1}


def test_queue_and_send_run_sends_while_it_queues(
    demo_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other senders (threads here, task runs in the flow) take partitions already committed while the
    rest is still being queued. The queueing pauses after each of its first two partitions until another
    sender has claimed some of it; a sender that did not follow the queue would drain the first and stop,
    and the second wait would fail."""
    from test_campaign_path import SRC, decide_campaign

    from winback.warehouse import outbox, queries

    sink_path = tmp_path / "sink.jsonl"
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))
    config = CampaignConfig(campaign_id="overlap")
    run = decide_campaign(demo_engine, config)  # decided and offered only, here
    with Session(demo_engine) as session, session.begin():
        stages.issue_run_offers(session, run, config)
    monkeypatch.setattr(senders_module, "MIN_MESSAGES_PER_SENDER", 10)
    monkeypatch.setattr(queries, "contacts_to_queue", partial(queries.contacts_to_queue, partition=40))
    enqueue, overlapped, helper_threads = outbox.enqueue_columns, [], set()

    def helper_claimed(ids: list[str]) -> bool:
        with demo_engine.connect() as conn:
            tokens = conn.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.id.in_(ids))).scalars()
            return any(token and token in helper_threads for token in tokens)

    def enqueue_then_wait(conn, columns):  # type: ignore[no-untyped-def]
        added = enqueue(conn, columns)
        if len(overlapped) < 2:  # the first two partitions: a follower must take each while queueing goes on
            conn.commit()  # this partition is visible to the others now
            ids, deadline = list(columns["id"]), time.monotonic() + 30
            while not helper_claimed(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            overlapped.append(helper_claimed(ids))
        return added

    token = outbox.sender_token

    def start_threads(job: SenderJob, count: int):  # type: ignore[no-untyped-def]
        assert job.follow_run
        reports: list[DispatchReport] = []

        def one() -> None:
            sink = SinkChannel(sink_path)
            reports.append(
                run_sender(
                    demo_engine, {"email": sink, "sms": sink}, job, source=local_source(demo_engine), links=LINKS
                )
            )

        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()

        def join() -> DispatchReport:
            total = DispatchReport()
            for t in threads:
                t.join(timeout=120)
            for r in reports:
                total.merge(r.as_dict())
            return total

        return join

    def tracked_token() -> str:  # the followers' tokens, to tell their claims from this thread's
        value = token()
        if threading.current_thread() is not threading.main_thread():
            helper_threads.add(value)
        return value

    monkeypatch.setattr(outbox, "sender_token", tracked_token)
    monkeypatch.setattr(outbox, "enqueue_columns", enqueue_then_wait)
    limits = SendLimits(email_per_second=1e6, sms_per_second=1e6, concurrency=4, senders=2)
    own = SinkChannel(sink_path)
    channels = {"email": own, "sms": own}
    queued, sent = stages.queue_and_send_run(
        demo_engine, SRC, run, config, AS_OF, channels, limits, start_threads, setup=send_setup(SRC)
    )

    assert overlapped == [True, True]
    counts = statuses(demo_engine, run.run_id)
    with demo_engine.connect() as conn:
        contacted = conn.execute(select(func.count()).select_from(Decision).where(
            Decision.run_id == run.run_id, Decision.action == "contact")).scalar_one()  # fmt: skip
    assert queued == contacted == sum(counts.values()) > 80
    assert sent.get("sent", 0) + sent.get("skipped", 0) == counts["sent"] + counts["skipped"]
    journal = Counter(record["message_id"] for record in SinkChannel(sink_path).records())
    assert set(journal.values()) == {1} and len(journal) == counts["sent"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_large_campaign_sends_with_sender_tasks(
    demo_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign flow, its run made 'large' (one sender per 10 messages, 2 at most): a `send_outbox` task
    run in its own process follows the queueing; every message once, the report summed over both."""
    from winback.flows.campaign import winback_campaign

    sink_path = tmp_path / "sink.jsonl"
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))
    monkeypatch.setenv("WINBACK_SENDERS", "2")
    monkeypatch.setattr(senders_module, "MIN_MESSAGES_PER_SENDER", 10)
    url = demo_engine.url.render_as_string(hide_password=False)
    config = CampaignConfig(campaign_id="many-senders")
    started: list[int] = []
    start = SenderProcesses.start

    def start_noting_the_processes(self: SenderProcesses, job: SenderJob, count: int):  # type: ignore[no-untyped-def]
        started.extend(self.ready_pids())
        return start(self, job, count)

    monkeypatch.setattr(SenderProcesses, "start", start_noting_the_processes)

    result = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)

    # the task got the flow's own SenderProcesses, its process started before deciding; no other process sent
    assert len(started) == 1 and set(claimers_pids(demo_engine, result["run_id"])) <= {os.getpid(), started[0]}

    counts = statuses(demo_engine, result["run_id"])
    assert result["messages_queued"] == sum(counts.values()) > 20
    assert "sending" not in counts
    with demo_engine.connect() as conn:  # what is still queued waits for its recipients' morning
        due = select(func.count()).where(OutboxMessage.status == "queued", OutboxMessage.not_before <= AS_OF)
        assert conn.execute(due).scalar_one() == 0
    assert result["sending"].get("sent", 0) == counts["sent"]
    journal = Counter(record["message_id"] for record in SinkChannel(sink_path).records())
    assert set(journal.values()) == {1} and len(journal) == counts["sent"]


def test_the_module_a_sender_process_imports_holds_the_send_path_alone() -> None:
    """Each sender process imports its task's module at start: not the CRM recovery, its models and reports."""
    heavy = ("winback.flows.dispatch", "winback.stages.recovery", "winback.segments", "winback.reports", "sklearn")
    assert imported_alongside("winback.flows.sending", "send_outbox", heavy) == ("winback.flows.sending", [])


def test_the_dispatch_flow_module_a_sender_process_also_imports_leaves_the_recovery_out() -> None:
    """A sender task run's context names its flow, so each sender process of `dispatch_outbox` imports the
    flow's module too: the CRM recovery it sweeps with is imported by that task alone (1.1 s)."""
    heavy = ("winback.stages.recovery", "winback.segments", "winback.reports", "sklearn")
    assert imported_alongside("winback.flows.dispatch", "dispatch_outbox", heavy) == ("winback.flows.dispatch", [])
