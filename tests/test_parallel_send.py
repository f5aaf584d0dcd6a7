"""Several sender processes on one run (messages.parallel_send), on SQLite and PostgreSQL.

They share the outbox through exclusive claims only, so the test checks what that must guarantee: every
message is sent exactly once (the sink's journal holds each id once), more than one process really
claimed rows, the per-process rates add up to the configured ones, and a failing helper is reported.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import AS_OF
from crash_sender import queue_messages
from sqlalchemy import Engine, func, select

from winback.channels.outcomes import OutgoingMessage, SendOutcome
from winback.channels.sink import SinkChannel
from winback.config import CampaignConfig
from winback.delivery import parallel_send
from winback.delivery.dispatch import LOCAL_CLAIM_SIZE, SendLimits
from winback.stages import campaign as stages
from winback.warehouse.models import Decision, OutboxMessage

NOW = AS_OF + dt.timedelta(days=1)
FAST = SendLimits(email_per_second=1e6, sms_per_second=1e6, concurrency=4, processes=3)


class WaitingSink(SinkChannel):
    """The parent's sink: its first send waits until another process has claimed rows of the run.

    Without it the parent could drain a test-sized queue before a helper finishes importing (~1-2 s).
    """

    def __init__(self, path: Path, engine: Engine, run_id: int) -> None:
        super().__init__(path)
        self.engine, self.run_id, self.waited = engine, run_id, False

    def send(self, message: OutgoingMessage) -> SendOutcome:
        deadline = time.monotonic() + 60
        while not self.waited and len(claimers(self.engine, self.run_id)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.waited = True
        return super().send(message)


def queue_run(engine: Engine, n: int) -> stages.RunHandle:
    recipients = [(f"P{i:05d}", "email", f"customer.{i}@example.com") for i in range(n)]
    return queue_messages(engine, recipients, AS_OF, campaign_id="parallel", offers=True)


def claimers(engine: Engine, run_id: int) -> Counter[str]:
    """host:pid of the sender that claimed each row, counted."""
    with engine.connect() as conn:
        tokens = conn.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.run_id == run_id)).scalars()
        return Counter(token.rsplit(":", 1)[0] for token in tokens if token)


def test_two_senders_send_every_message_exactly_once(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink_path = tmp_path / "sink.jsonl"
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))
    monkeypatch.setattr(parallel_send, "MIN_MESSAGES_PER_PROCESS", 100)
    total = 2 * LOCAL_CLAIM_SIZE + 1000  # the parent's claim, the helper's, and a remainder
    run = queue_run(engine, total)
    waiting = WaitingSink(sink_path, engine, run.run_id)  # same journal as the helper's sink
    monkeypatch.setattr(stages, "configured_channels", lambda: {"email": waiting, "sms": waiting})

    result = stages.send_run(engine, run, None, "parallel", NOW, limits=replace(FAST, processes=2))

    journal = Counter(record["message_id"] for record in SinkChannel(sink_path).records())
    assert result["sent"] == total
    assert len(journal) == total and set(journal.values()) == {1}
    with engine.connect() as conn:
        statuses = conn.execute(select(OutboxMessage.status).where(OutboxMessage.run_id == run.run_id)).scalars()
        assert Counter(statuses) == {"sent": total}
    by_process = claimers(engine, run.run_id)
    assert len(by_process) == 2 and min(by_process.values()) >= LOCAL_CLAIM_SIZE, by_process


def test_a_small_send_stays_in_one_process(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINBACK_SINK_PATH", str(tmp_path / "sink.jsonl"))
    run = queue_run(engine, 50)
    assert parallel_send.senders_for(50, FAST) == 1
    assert stages.send_run(engine, run, None, "parallel", NOW, limits=FAST)["sent"] == 50
    assert len(claimers(engine, run.run_id)) == 1


def test_explicit_channels_are_never_shared_with_helpers(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Helpers build channels from the environment, so channels handed in keep the send in this process."""
    monkeypatch.setattr(parallel_send, "MIN_MESSAGES_PER_PROCESS", 10)
    run = queue_run(engine, 200)
    sink = SinkChannel(tmp_path / "own.jsonl")
    assert stages.send_run(engine, run, {"email": sink, "sms": sink}, "parallel", NOW, limits=FAST)["sent"] == 200
    assert len(claimers(engine, run.run_id)) == 1
    assert len(sink.records()) == 200


def test_senders_share_the_rate_and_never_exceed_the_cpu_setting() -> None:
    limits = SendLimits(email_per_second=90, sms_per_second=12, processes=3)
    share = limits.shared_by(3)
    assert (share.email_per_second * 3, share.sms_per_second * 3) == (90, 12)
    assert parallel_send.senders_for(10**7, limits) == 3
    assert parallel_send.senders_for(2 * parallel_send.MIN_MESSAGES_PER_PROCESS, limits) == 2


def test_a_failing_helper_is_reported(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent still sends its share; the helper's failure fails the send (a task retry reconciles)."""
    monkeypatch.setenv("WINBACK_SINK_PATH", str(tmp_path / "sink.jsonl"))
    monkeypatch.setattr(parallel_send, "HELPER_COMMAND", [sys.executable, "-c", "import sys; sys.exit(3)"])
    run = queue_run(engine, 20)
    with pytest.raises(parallel_send.HelperSenderError, match=r"helper sender pid \d+ exited with code 3"):
        parallel_send.send_in_processes(
            engine, {"email": SinkChannel(), "sms": SinkChannel()}, 2, run_id=run.run_id,
            campaign_id="parallel", now=NOW, limits=FAST,
        )  # fmt: skip
    assert len(SinkChannel().records()) == 20


def test_sending_overlaps_queueing_and_still_sends_each_message_once(
    demo_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """queue_and_send_run: a helper sends partitions already committed while the rest is being queued.

    The parent pauses after each of its first two partitions until a helper has claimed some of it; a
    helper that did not follow the queue would drain the first and stop, and the second wait would fail.
    """
    from functools import partial

    from test_campaign_path import SRC, run_campaign

    from winback.warehouse import outbox, queries

    sink_path = tmp_path / "sink.jsonl"
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))
    monkeypatch.setattr(parallel_send, "MIN_MESSAGES_PER_PROCESS", 10)
    config = CampaignConfig(campaign_id="overlap")
    run = stages.start_run(demo_engine, config, AS_OF)
    monkeypatch.setattr(stages, "queue_run_messages", lambda *a, **k: 0)  # decide and offer only, here
    monkeypatch.setattr(stages, "send_run", lambda *a, **k: {})
    run_campaign(demo_engine, config)
    monkeypatch.undo()
    monkeypatch.setenv("WINBACK_SINK_PATH", str(sink_path))
    monkeypatch.setattr(parallel_send, "MIN_MESSAGES_PER_PROCESS", 10)
    monkeypatch.setattr(queries, "contacts_to_queue", partial(queries.contacts_to_queue, partition=40))
    enqueue, overlapped = outbox.enqueue, []

    def helper_claimed(ids: list[str]) -> bool:
        with demo_engine.connect() as conn:
            tokens = conn.execute(select(OutboxMessage.claimed_by).where(OutboxMessage.id.in_(ids))).scalars()
            return any(token and f":{os.getpid()}:" not in token for token in tokens)

    def enqueue_then_wait(conn, rows):  # type: ignore[no-untyped-def]
        added = enqueue(conn, rows)
        if len(overlapped) < 2:  # the first two partitions: the helper must take each while queueing goes on
            conn.commit()  # this partition is visible to the helper now
            ids, deadline = [r["id"] for r in rows], time.monotonic() + 30
            while not helper_claimed(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            overlapped.append(helper_claimed(ids))
        return added

    monkeypatch.setattr(outbox, "enqueue", enqueue_then_wait)
    queued, sent = stages.queue_and_send_run(demo_engine, SRC, run, config, AS_OF, limits=replace(FAST, processes=2))

    assert overlapped == [True, True]
    with demo_engine.connect() as conn:
        statuses = Counter(
            conn.execute(select(OutboxMessage.status).where(OutboxMessage.run_id == run.run_id)).scalars()
        )
        contacted = conn.execute(select(func.count()).select_from(Decision).where(
            Decision.run_id == run.run_id, Decision.action == "contact")).scalar_one()  # fmt: skip
    assert queued == contacted == sum(statuses.values()) > 80
    assert sent.get("sent", 0) + sent.get("skipped", 0) == statuses["sent"] + statuses["skipped"]
    journal = Counter(record["message_id"] for record in SinkChannel(sink_path).records())
    assert set(journal.values()) == {1} and len(journal) == statuses["sent"]
