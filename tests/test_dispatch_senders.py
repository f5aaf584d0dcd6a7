"""Several senders on one run (the scale-out issue's senders): each message once, and a killed one settled.

- Two senders in two threads, small claims so they race for rows: each message sent once.
- Two sender processes on one run, one killed with SIGKILL mid-send while the other carries on to the end:
  after reconcile and a re-run, every message left exactly once (sink), or at most once with at most the
  killed sender's calls in flight `unknown` (providers, through the SDKs to the stand-ins).
- Three senders at a rate R keep R together (one token bucket per channel in the state database): over the
  W seconds they send, at most R (the bucket's burst) + R·W (its refill) + 2 messages.
The survivor never touches the killed sender's claim (it is `sending` under another token); reconcile,
run after, settles it. SQLite and PostgreSQL (the `engine` fixture).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from conftest import AS_OF
from crash_harness import (
    BAD_CUSTOMERS,
    CONCURRENCY,
    NOW,
    JournalLines,
    Recording,
    duplicates,
    finish,
    kill9,
    outbox_frame,
    provider_env,
    queue_big_run,
    sendgrid_message_id,
    skipped_customers,
    start_sender,
    status_counts,
    wait_until,
)
from crash_sender import PacedSink, queue_messages
from sqlalchemy import Engine
from standins import sendgrid_api, twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TwilioStandin

from winback.channels.outcomes import OutgoingMessage, SendOutcome, Sent
from winback.channels.sendgrid import SendGridChannel
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel
from winback.delivery.dispatch import SendLimits, reconcile, send_due
from winback.delivery.senders import SenderJob, run_sender
from winback.delivery.settle import UnknownPolicy
from winback.warehouse import rate_buckets

sendgrid_standin = sendgrid_api.sendgrid_standin
twilio_standin = twilio_api.twilio_standin

TWO = {"CRASH_SENDER_CLAIM": "40", "CRASH_SENDER_RATE": "150"}  # small claims: the two interleave


def test_two_concurrent_senders_send_each_message_once(engine: Engine, tmp_path: Path) -> None:
    """Two senders in two threads on the same run, small claims so they race for rows: each message once.

    Each keeps calling `send_due` while anything is queued: a sender that loses a claim race returns early
    (its claim came back empty), which is harmless since the winner sends those rows.
    """
    run = queue_messages(engine, [(f"C{i:04d}", "email", f"c{i}@example.com") for i in range(300)], AS_OF)
    journal = tmp_path / "sink.jsonl"
    barrier = threading.Barrier(2)
    sent: list[int] = [0, 0]
    errors: list[BaseException] = []

    def sender(index: int) -> None:
        sink = PacedSink(journal)  # one journal, two writers, as two processes would have
        limits = SendLimits(email_per_second=100, concurrency=4)
        try:
            barrier.wait(timeout=10)
            while status_counts(engine, run.run_id).get("queued", 0):
                report = send_due(engine, {"email": sink, "sms": sink}, run_id=run.run_id, now=NOW,
                                  claim_size=20, limits=limits)  # fmt: skip
                sent[index] += report.counts["sent"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert min(sent) > 0, f"both senders should have won claims: {sent}"
    assert sum(sent) == 300
    ids = [r["message_id"] for r in SinkChannel(journal).records()]
    assert len(ids) == len(set(ids)) == 300
    assert status_counts(engine, run.run_id) == {"sent": 300}


def test_two_sender_processes_one_killed_still_send_each_message_exactly_once(engine: Engine, tmp_path: Path) -> None:
    """Two sink senders on one run; one is killed at a random moment, the other finishes; reconcile, re-run."""
    run = queue_big_run(engine)
    journal = tmp_path / "sink.jsonl"
    lines = JournalLines(journal)
    doomed = start_sender(engine, "sink", tmp_path, TWO, name="doomed")
    survivor = start_sender(engine, "sink", tmp_path, TWO, name="survivor")
    kill_at = random.Random(20261102).randint(60, 300)
    try:
        wait_until(lambda: lines() >= kill_at, doomed, f"{kill_at} journal lines")
        kill9(doomed)
        at_kill = lines()
        finish(survivor)
    finally:
        lines.close()
        for proc in (doomed, survivor):
            if proc.is_alive():
                proc.kill()
    assert JournalLines(journal)() > at_kill, "the survivor must have gone on sending"
    stranded = status_counts(engine, run.run_id).get("sending", 0)
    assert stranded <= 40, "only the killed sender's claim is left (none if killed between claims)"

    sink = SinkChannel(journal)
    settled = reconcile(engine, sink, run.run_id)
    assert sum(settled.values()) == stranded
    assert settled.get("sent", 0) <= CONCURRENCY
    send_due(engine, {"email": sink, "sms": sink}, run_id=run.run_id, now=NOW)

    rows = outbox_frame(engine, run.run_id)
    assert set(rows["status"]) == {"sent", "skipped"}
    assert skipped_customers(rows) == BAD_CUSTOMERS
    ids = [r["message_id"] for r in sink.records()]
    assert duplicates(ids) == [], "messages sent twice"
    assert set(ids) == set(rows.loc[rows["status"] == "sent", "id"])


def test_two_provider_senders_one_killed_send_each_message_at_most_once(
    engine: Engine, tmp_path: Path, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin
) -> None:
    """Two senders through the SDKs to the stand-ins on one run; one killed mid-send, the other finishes."""
    sg, tw = sendgrid_standin, twilio_standin
    run = queue_big_run(engine)
    env = {**provider_env(sg, tw), **TWO}
    doomed = start_sender(engine, "providers", tmp_path, env, name="doomed")
    survivor = start_sender(engine, "providers", tmp_path, env, name="survivor")
    try:
        wait_until(lambda: len(sg.accepted) >= 1, doomed, "the first email accepted")
        time.sleep(random.Random(20261103).uniform(0.1, 1.0))
        kill9(doomed)
        finish(survivor)
    finally:
        for proc in (doomed, survivor):
            if proc.is_alive():
                proc.kill()
    stranded = status_counts(engine, run.run_id).get("sending", 0)

    channels = {"email": Recording(SendGridChannel(sg.settings())), "sms": Recording(TwilioChannel(tw.settings()))}
    policy = UnknownPolicy(lookup_visibility_seconds=0, operator_wait_seconds=0)
    settled = reconcile(engine, channels, run.run_id, policy=policy)
    assert settled.get("queued", 0) + settled.get("unknown", 0) == stranded
    assert settled.get("unknown", 0) <= CONCURRENCY
    send_due(engine, channels, run_id=run.run_id, now=NOW, limits=SendLimits(1000, 1000, 8))

    rows = outbox_frame(engine, run.run_id)
    unknown = set(rows.loc[rows["status"] == "unknown", "id"])
    assert set(rows["status"]) <= {"sent", "unknown", "skipped"}
    assert len(unknown) <= CONCURRENCY
    assert skipped_customers(rows) == BAD_CUSTOMERS
    assert duplicates([sendgrid_message_id(e) for e in sg.received]) == [], "an email reached SendGrid twice"
    assert duplicates([(e.fields().get("To"), e.fields().get("Body")) for e in tw.creates]) == []
    assert unknown.isdisjoint(set(channels["email"].ids) | set(channels["sms"].ids))
    accepted_email = {sendgrid_message_id(e) for e in sg.accepted}
    sent = rows.loc[rows["status"] == "sent"]
    assert set(sent.loc[sent["channel"] == "email", "id"]) <= accepted_email <= set(sent["id"]) | unknown
    assert set(sent.loc[sent["channel"] == "sms", "provider_message_id"]) == {
        e.response_json()["sid"] for e in tw.accepted
    }


class StampingProvider:
    """A provider-like channel (rate limited, no journal) that answers at once and notes when it was called."""

    name = "stamping"
    rate_limited = True

    def __init__(self, stamps: list[float]) -> None:
        self.stamps = stamps

    def send(self, message: OutgoingMessage) -> SendOutcome:
        self.stamps.append(time.monotonic())
        return Sent("stamping", f"s-{message.message_id}")


def test_three_senders_together_keep_the_channel_rate(engine: Engine) -> None:
    """Three senders at R = 40/s each built their own limiter; the bucket they share keeps their sum at R.

    With a bucket per sender they would send 3R at once (each bucket starts full) and finish in about a
    second; shared, 160 messages need about 3 s.
    """
    rate, total = 40.0, 160
    run = queue_messages(engine, [(f"R{i:04d}", "email", f"r{i}@example.com") for i in range(total)], AS_OF)
    stamps: list[float] = []
    job = SenderJob(run.run_id, "rate", NOW, SendLimits(email_per_second=rate, concurrency=4), claim_size=20)
    errors: list[BaseException] = []

    def sender() -> None:
        channel = StampingProvider(stamps)
        try:
            run_sender(engine, {"email": channel, "sms": channel}, job)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(3)]
    started = time.monotonic()  # W runs from the senders' start: the bucket is created (full) after it
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert status_counts(engine, run.run_id) == {"sent": total}
    window = max(stamps) - started
    assert len(stamps) <= rate + rate * window + 2, f"{len(stamps)} sends in {window:.2f} s at {rate}/s"


def test_a_rate_bucket_refills_with_time_up_to_its_burst(engine: Engine) -> None:
    """take(): full at first use, empty after its burst, refilled per second elapsed, never above capacity,
    never refilled by a clock that went back; channels apart."""
    t0 = 1_000_000.0
    with engine.begin() as conn:
        assert rate_buckets.take(conn, "sms", 10, 10.0, 10.0, t0)  # created full: the whole burst at once
        assert not rate_buckets.take(conn, "sms", 1, 10.0, 10.0, t0)
        assert rate_buckets.seconds_until(conn, "sms", 5, 10.0, 10.0, t0) == pytest.approx(0.5)
        assert not rate_buckets.take(conn, "sms", 5, 10.0, 10.0, t0 + 0.4)  # 4 tokens: too few, none taken
        assert rate_buckets.take(conn, "sms", 5, 10.0, 10.0, t0 + 0.5)
        assert not rate_buckets.take(conn, "sms", 1, 10.0, 10.0, t0 - 100)  # a clock behind refills nothing
        assert rate_buckets.take(conn, "email", 3, 100.0, 100.0, t0)  # another channel, another bucket
        assert not rate_buckets.take(conn, "sms", 11, 10.0, 10.0, t0 + 3600)  # an hour idle: still one burst
        assert rate_buckets.take(conn, "sms", 10, 10.0, 10.0, t0 + 3600)
