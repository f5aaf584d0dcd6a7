"""Delivery guarantees across a crash: kill -9 a sender mid-send, reconcile, send again.

The policy proven here (delivery/dispatch.py, delivery/recorder.py, delivery/reconcile.py, warehouse/outbox.py,
README "Delivery guarantees"):

- Rows are claimed (queued → sending) and committed in batches; each row is then marked started (committed)
  just before its own provider call, and its answer committed as it arrives. A crash therefore leaves one
  claim's rows in `sending`, of which at most the calls in flight (the sender's concurrency) had started.
- Local sink (a journal that answers "did it leave?"): exactly once. `reconcile` turns each stranded row
  into `sent` (the journal has it) or back into `queued` (it never left), and the re-run sends only those:
  afterwards every message id is in the journal exactly once and every row is `sent`, or `skipped` for bad
  contact data.
- Providers: at most once, and `unknown` at most the calls in flight. `reconcile` puts stranded rows whose
  call never started back in the queue and makes the started ones `unknown`; a Twilio lookup settles the SMS
  among them (listed: `sent` with its SID; not listed: re-queued once), signed SendGrid events settle the
  emails they name, and the rest are listed for an operator, never resent automatically. No message id
  reaches a provider twice, and nothing is lost: every other row ends `sent` or `skipped`.
- Each stranded row is settled by its own channel: with SendGrid for email and the sink for SMS, the
  journal answers for SMS rows only.
- Only a gone sender's claim is reconciled: a live sender's claim is left to it.

The crash is real (tests/crash_harness.py): `crash_sender.run_sender` in a child process forked from a
forkserver, killed with SIGKILL, at set journal counts for the sink and at random moments for the providers
(the seeds are in the test ids: WINBACK_CRASH_SEEDS="1,2,..." runs more). Each run is on SQLite and
PostgreSQL (the `engine` fixture). Two senders on one run are in tests/test_dispatch_senders.py.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest
from conftest import AS_OF, LINKS, local_source, send_setup
from crash_harness import (
    BAD_CUSTOMERS,
    CLAIM,
    CONCURRENCY,
    NOW,
    JournalLines,
    Recording,
    duplicates,
    kill9,
    outbox_frame,
    post_signed_sendgrid_events,
    provider_env,
    queue_big_run,
    sendgrid_event,
    sendgrid_message_id,
    skipped_customers,
    start_sender,
    status_counts,
    wait_until,
)
from crash_sender import queue_messages
from sqlalchemy import Engine
from standins import sendgrid_api, twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TwilioStandin

from winback.channels.sendgrid import SendGridChannel
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel
from winback.delivery.dispatch import SendLimits, reconcile, send_due
from winback.delivery.settle import UnknownPolicy
from winback.stages import campaign as stages
from winback.warehouse import outbox_unknown

sendgrid_standin = sendgrid_api.sendgrid_standin
twilio_standin = twilio_api.twilio_standin

SEEDS = [int(s) for s in os.environ.get("WINBACK_CRASH_SEEDS", "1,2").split(",") if s.strip()]
DECIDE_NOW = UnknownPolicy(lookup_visibility_seconds=0, operator_wait_seconds=0)  # no waiting in tests


def started_rows(engine: Engine, run_id: int) -> int:
    """Rows left `sending` whose call had started: the ones a crash cannot place."""
    rows = outbox_frame(engine, run_id, ("started_at",))
    return int(((rows["status"] == "sending") & rows["started_at"].notna()).sum())


# -- kill -9 against the local sink: exactly once ---------------------------------------------------------
@pytest.mark.parametrize("kill_after", [30, 150, 250], ids=["claim1-early", "claim1-late", "claim2"])
def test_kill9_mid_send_then_rerun_sends_every_message_exactly_once(
    engine: Engine, tmp_path: Path, kill_after: int
) -> None:
    """SIGKILL a sink sender (paced like a provider) mid-claim; reconcile + re-run: nothing twice, nothing lost.

    Kill points are journal line counts early and late in the first claim of 200 rows and inside the
    second. Only the calls in flight can be journaled but not recorded; the rest of the claim never left.
    """
    run = queue_big_run(engine)
    journal = tmp_path / "sink.jsonl"
    assert os.environ["WINBACK_SINK_PATH"] == str(journal)
    lines = JournalLines(journal)
    proc = start_sender(engine, "sink", tmp_path)
    try:
        wait_until(lambda: lines() >= kill_after, proc, f"{kill_after} journal lines")
        kill9(proc)
    finally:
        lines.close()
        if proc.is_alive():
            proc.kill()
    stranded = status_counts(engine, run.run_id).get("sending", 0)
    assert 0 < stranded <= CLAIM, "the kill must land mid-claim, stranding at most one claim"
    assert started_rows(engine, run.run_id) <= CONCURRENCY

    sink = SinkChannel(journal)
    settled = reconcile(engine, sink, run.run_id, policy=UnknownPolicy())
    assert sum(settled.values()) == stranded
    assert settled.get("sent", 0) <= CONCURRENCY, "only calls in flight can be journaled but not recorded"
    assert settled.get("queued", 0) > 0, "messages of the claim that never left must go back to the queue"
    send_due(engine, {"email": sink, "sms": sink}, run_id=run.run_id, now=NOW, source=local_source(engine), links=LINKS)

    rows = outbox_frame(engine, run.run_id)
    assert set(rows["status"]) == {"sent", "skipped"}
    assert skipped_customers(rows) == BAD_CUSTOMERS
    ids = [r["message_id"] for r in sink.records()]
    assert len(ids) == journal.read_text().count("\n"), "no torn journal lines"
    assert duplicates(ids) == [], "messages sent twice"
    assert set(ids) == set(rows.loc[rows["status"] == "sent", "id"])
    assert len(ids) == (rows["status"] == "sent").sum()


# -- kill -9 against the providers: at most once, unknown at most the calls in flight ----------------------
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_kill9_at_a_random_moment_leaves_unknown_only_the_calls_in_flight(
    engine: Engine, tmp_path: Path, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin, seed: int
) -> None:
    """SIGKILL a sender talking to SendGrid and Twilio through their SDKs at a random moment of its sending.

    The stand-ins live here, so they outlive the kill and say what really reached them. After reconcile,
    lookups and signed events, and a re-run: no message reached a provider twice, every row is `sent` or
    `skipped` except at most CONCURRENCY `unknown` ones, all listed for an operator and none of which
    SendGrid had (a SendGrid-accepted one is settled by its signed event).
    """
    sg, tw = sendgrid_standin, twilio_standin
    run = queue_big_run(engine)
    proc = start_sender(engine, "providers", tmp_path, {**provider_env(sg, tw), "CRASH_SENDER_RATE": "200"})
    delay = random.Random(seed).uniform(0.0, 1.5)
    try:
        wait_until(lambda: len(sg.accepted) >= 1, proc, "the first email accepted by the SendGrid stand-in")
        time.sleep(delay)
        kill9(proc)
    finally:
        if proc.is_alive():
            proc.kill()
    stranded = status_counts(engine, run.run_id).get("sending", 0)
    in_flight = started_rows(engine, run.run_id)
    assert in_flight <= CONCURRENCY

    channels = {"email": Recording(SendGridChannel(sg.settings())), "sms": Recording(TwilioChannel(tw.settings()))}
    settled = reconcile(engine, channels, run.run_id, policy=DECIDE_NOW)
    print(f"seed {seed}: killed {delay:.2f} s after the first email; stranded {stranded}, started {in_flight}, "
          f"settled {settled}")  # fmt: skip
    assert settled.get("queued", 0) + settled.get("unknown", 0) == stranded
    assert settled.get("unknown", 0) == in_flight <= CONCURRENCY
    assert settled.get("sent_by_event", 0) == 0  # no provider events yet
    assert channels["email"].ids == channels["sms"].ids == [], "reconcile never sends"
    # Twilio answers for its SMS: each was looked up, and listed (sent) or not (re-queued once)
    assert status_counts(engine, run.run_id).get("sending", 0) == 0
    unknown_sms = outbox_frame(engine, run.run_id).query("status == 'unknown' and channel == 'sms'")
    assert unknown_sms.empty

    # SendGrid answers through signed events for the emails it had; the rest are listed for an operator
    accepted_email = {sendgrid_message_id(e): e.response.headers["X-Message-Id"] for e in sg.accepted}
    with engine.connect() as conn:
        unknown_email = {r["id"] for r in outbox_unknown.unknown_rows(conn, run.run_id)}
    had = sorted(unknown_email & set(accepted_email))
    if had:
        events = [sendgrid_event(oid, accepted_email[oid], n) for n, oid in enumerate(had)]
        assert post_signed_sendgrid_events(engine, events)["reconciled"] == len(had)
    listed = reconcile(engine, channels, run.run_id, policy=DECIDE_NOW).get("unknown_for_operator", 0)
    assert listed == len(unknown_email) - len(had)

    fast = SendLimits(email_per_second=1000, sms_per_second=1000, concurrency=8)
    report = send_due(
        engine, channels, run_id=run.run_id, now=NOW, limits=fast, source=local_source(engine), links=LINKS
    )
    assert report.counts["sent"] > 0
    rows = outbox_frame(engine, run.run_id)
    unknown = set(rows.loc[rows["status"] == "unknown", "id"])
    assert set(rows["status"]) <= {"sent", "unknown", "skipped"}, "nothing lost: every other row settled"
    assert len(unknown) <= CONCURRENCY
    assert skipped_customers(rows) == BAD_CUSTOMERS  # a bad address never starts a call: never unknown
    resent = set(channels["email"].ids) | set(channels["sms"].ids)
    assert unknown.isdisjoint(resent), "an unknown message was sent again"
    assert duplicates([sendgrid_message_id(e) for e in sg.received]) == [], "an email reached SendGrid twice"
    assert duplicates([(e.fields().get("To"), e.fields().get("Body")) for e in tw.creates]) == []
    # every email SendGrid accepted is `sent` with its id; those it never had are sent now or still unknown
    accepted_email = {sendgrid_message_id(e): e.response.headers["X-Message-Id"] for e in sg.accepted}
    sent = rows.loc[rows["status"] == "sent"]
    sent_email = sent.loc[sent["channel"] == "email"]
    assert set(sent_email["id"]) == set(accepted_email) - {None}
    assert all(accepted_email[r.id] == r.provider_message_id for r in sent_email.itertuples())
    assert unknown.isdisjoint(accepted_email)
    # every SMS Twilio accepted is one `sent` row with its SID, and no SMS is unknown
    assert set(sent.loc[sent["channel"] == "sms", "provider_message_id"]) == {
        e.response_json()["sid"] for e in tw.accepted
    }


# -- regressions: bugs found while writing these tests --------------------------------------------------------
def test_kill9_with_email_through_sendgrid_and_sms_to_the_sink_settles_each_by_its_channel(
    engine: Engine, tmp_path: Path, sendgrid_standin: SendGridStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendGrid keys but no Twilio keys: email goes to SendGrid, SMS to the sink. After a kill -9, `send_run`
    must ask the journal only about SMS rows: stranded emails are `unknown` (or queued, never started), never
    resent while `unknown`.

    (Was a bug: send_run and dispatch_outbox handed the sink journal to reconcile for every row, so emails
    SendGrid had accepted were missing from it, requeued and sent twice.)
    """
    sg = sendgrid_standin
    run = queue_big_run(engine)
    proc = start_sender(engine, "providers", tmp_path, provider_env(sg))
    try:
        wait_until(lambda: len(sg.accepted) >= 130, proc, "130 emails accepted by the SendGrid stand-in")
        kill9(proc)
    finally:
        if proc.is_alive():
            proc.kill()
    assert status_counts(engine, run.run_id).get("sending", 0) > 0

    journal = SinkChannel(tmp_path / "sink.jsonl")
    email = Recording(SendGridChannel(sg.settings()))
    fast = SendLimits(email_per_second=1000, sms_per_second=1000)
    stages.send_run(
        engine, run, {"email": email, "sms": journal}, "crash", NOW, fast, setup=send_setup()
    )  # reconcile, then send

    rows = outbox_frame(engine, run.run_id)
    statuses = rows.groupby("channel")["status"].agg(set).to_dict()
    assert {"sent", "skipped"} <= statuses["email"] <= {"sent", "unknown", "skipped"}
    assert statuses["sms"] == {"sent", "skipped"}
    unknown = set(rows.loc[rows["status"] == "unknown", "id"])
    assert len(unknown) <= CONCURRENCY
    assert duplicates([sendgrid_message_id(e) for e in sg.received]) == [], "emails SendGrid had were sent again"
    assert unknown.isdisjoint(email.ids)
    sms_ids = [r["message_id"] for r in journal.records()]
    assert len(sms_ids) == len(set(sms_ids))
    assert set(sms_ids) == set(rows.loc[(rows["channel"] == "sms") & (rows["status"] == "sent"), "id"])


class GatedSink(SinkChannel):
    """A sink whose first send waits (before writing the journal) until the test releases it."""

    def __init__(self, path: Path, entered: threading.Event, release: threading.Event) -> None:
        super().__init__(path)
        self.entered, self.release = entered, release

    def send(self, message):  # type: ignore[no-untyped-def]
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(timeout=30)
        return super().send(message)


def test_reconcile_leaves_a_live_senders_claim_alone(engine: Engine, tmp_path: Path) -> None:
    """Sender A has claimed 10 rows and is sending the first; meanwhile `send_run` reconciles and sends.

    (Was a bug: reconcile took every `sending` row for a crash's, so the live claim was requeued and sent
    twice; send_run and the hourly dispatch_outbox are different deployments, so they can overlap.)
    """
    run = queue_messages(engine, [(f"C{i:03d}", "email", f"c{i}@example.com") for i in range(30)], AS_OF)
    journal = tmp_path / "sink.jsonl"
    entered, release = threading.Event(), threading.Event()
    gated = GatedSink(journal, entered, release)
    live = threading.Thread(
        target=send_due, args=(engine, {"email": gated, "sms": gated}),
        kwargs={"run_id": run.run_id, "now": NOW, "claim_size": 10, "source": local_source(engine), "links": LINKS},
    )  # fmt: skip
    live.start()
    try:
        assert entered.wait(timeout=30)
        sink = SinkChannel(journal)
        stages.send_run(engine, run, {"email": sink, "sms": sink}, "dispatch-test", NOW, setup=send_setup())
    finally:
        release.set()
        live.join(timeout=30)
    ids = [r["message_id"] for r in SinkChannel(journal).records()]
    assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} messages sent twice"
    assert len(ids) == 30


def test_journal_keeps_the_record_written_after_a_torn_line(tmp_path: Path) -> None:
    """(Was a bug: the sink appended right after a torn last line, gluing the next record to it.)"""
    from winback.channels.outcomes import OutgoingMessage

    journal = tmp_path / "sink.jsonl"
    journal.write_text(json.dumps({"message_id": "a", "channel": "email"}) + '\n{"message_id": "b", "chan')
    sink = SinkChannel(journal)
    sink.send(OutgoingMessage(message_id="c", channel="email", to="c@example.com", text="hello"))
    assert sink.has_sent({"a", "b", "c"}) == {"a", "c"}


class Broken:
    """A channel that fails in a way no adapter maps to an outcome (a bug, a missing dependency...)."""

    name = "broken"
    rate_limited = False

    def send(self, message):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


def test_a_claim_abandoned_by_a_failed_send_in_this_process_is_settled(engine: Engine, tmp_path: Path) -> None:
    """send_due raises after claiming (rows stay `sending`); the same process then reconciles and re-sends,
    as dispatch_outbox's task retries do. Nothing is sending any more, so the rows must be settled."""
    run = queue_messages(engine, [(f"C{i}", "email", f"c{i}@example.com") for i in range(5)], AS_OF)
    with pytest.raises(RuntimeError, match="boom"):
        send_due(
            engine,
            {"email": Broken(), "sms": Broken()},
            run_id=run.run_id,
            now=NOW,
            source=local_source(engine),
            links=LINKS,
        )
    assert status_counts(engine, run.run_id) == {"sending": 5}

    sink = SinkChannel(tmp_path / "sink.jsonl")
    assert reconcile(engine, {"email": sink, "sms": sink}, run.run_id, policy=UnknownPolicy()) == {"queued": 5}
    send_due(engine, {"email": sink, "sms": sink}, run_id=run.run_id, now=NOW, source=local_source(engine), links=LINKS)
    assert status_counts(engine, run.run_id) == {"sent": 5}


class BrokenForOne:
    """A provider-like channel (sent concurrently) whose adapter raises for one recipient only."""

    name = "flaky"
    rate_limited = True

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message):  # type: ignore[no-untyped-def]
        from winback.channels.outcomes import Sent

        if message.to == "c2@example.com":
            raise RuntimeError("adapter bug")
        self.sent.append(message.message_id)
        return Sent(provider="flaky", provider_message_id=f"p-{message.message_id}")


def test_an_adapter_raising_for_one_message_keeps_the_others_outcomes(engine: Engine) -> None:
    from winback.delivery.dispatch import SendCrashed, SendLimits

    run = queue_messages(engine, [(f"C{i}", "email", f"c{i}@example.com") for i in range(5)], AS_OF)
    channel = BrokenForOne()
    with pytest.raises(SendCrashed, match=r"1 message\(s\) left `sending` for reconcile .*RuntimeError: adapter bug"):
        send_due(engine, {"email": channel, "sms": channel}, run_id=run.run_id, now=NOW,
                 limits=SendLimits(email_per_second=1000, concurrency=4),
                 source=local_source(engine), links=LINKS)  # fmt: skip
    assert len(channel.sent) == 4
    assert status_counts(engine, run.run_id) == {"sent": 4, "sending": 1}  # nothing lost, nothing sent twice
    assert reconcile(engine, {"email": channel, "sms": channel}, run.run_id, policy=UnknownPolicy()) == {"unknown": 1}
