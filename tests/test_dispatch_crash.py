"""Delivery guarantees across a crash: kill -9 a sender mid-send, reconcile, send again.

The policy proven here (messages/dispatch.py, warehouse/outbox.py, README "Delivery guarantees"):

- Every outbox row is claimed (queued → sending) and committed before its provider call, and its outcome
  is recorded after; a crash therefore leaves at most one claim batch in `sending`, never a silent gap.
- Local sink (a journal that answers "did it leave?"): exactly once. `reconcile` turns each stranded row
  into `sent` (the journal has it) or back into `queued` (it never left), and the re-run sends only those:
  afterwards every message id is in the journal exactly once and every row is `sent`, or `skipped` for bad
  contact data.
- Providers (no lookup by our id): at most once. `reconcile(engine, None)` turns stranded rows into
  `unknown`, which are never resent automatically (a second apology is worse than a late one); the
  re-run sends everything else. No message id reaches a provider twice; `unknown` is at most one claim.
- Each stranded row is settled by its own channel: with SendGrid for email and the sink for SMS, the
  journal answers for SMS rows only and stranded emails become `unknown`.
- Only a gone sender's claim is reconciled: a live sender's claim is left to it.
- Two senders at once never send the same message: a claim is one conditional UPDATE.

The crash is real: `tests/crash_sender.py` runs `send_due` in a child process (paced, so it is mid-claim
for about half a second or more around each kill point) and the test kills it with SIGKILL once the
journal (or the provider stand-in, which lives in this process and survives the kill) has seen a given
number of messages. The child is forked from a multiprocessing forkserver (a fresh `sys.executable`
interpreter that has imported the sender's modules once), so each kill costs milliseconds of start-up,
not seconds. Each run is on SQLite and PostgreSQL (the `engine` fixture).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF
from crash_sender import PacedSink, queue_messages, run_sender
from sqlalchemy import Engine, select
from standins import sendgrid_api, twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TwilioStandin

from winback.channels.sendgrid import SendGridChannel
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel
from winback.delivery.dispatch import SendLimits, reconcile, send_due
from winback.stages import campaign as stages
from winback.warehouse import outbox
from winback.warehouse.models import OutboxMessage

sendgrid_standin = sendgrid_api.sendgrid_standin
twilio_standin = twilio_api.twilio_standin

TESTS = Path(__file__).resolve().parent
NOW = AS_OF + dt.timedelta(days=1)  # quiet hours are over everywhere: every queued message is due
RATE = 100.0  # messages/s per channel in the child: a claim of 200 (~180 emails) takes ~1.8 s, ~0.8 s for the
#               first (its first 100 go at once: the token bucket starts full)
CLAIM = 200  # send_due's default claim size: the most a crash can strand
CONTACT_DATA = ("missing email address", "invalid email address", "missing phone number", "invalid phone number")


# -- helpers ------------------------------------------------------------------------------------------------
BAD_EMAILS = {17: "hugo moreau@example.com", 211: "ruby.taylor.example.com", 333: "lucas@example", 480: ""}
BAD_PHONES = {5: "+44711014294", 40: "12"}


def queue_big_run(engine: Engine) -> stages.RunHandle:
    """660 queued messages (600 email, 60 SMS, a few with bad contact data, half with an offer code)."""
    emails = [(f"E{i:04d}", "email", BAD_EMAILS.get(i, f"customer.{i}@example.com")) for i in range(600)]
    phones = [(f"S{i:04d}", "sms", BAD_PHONES.get(i, f"+4479111{i:05d}")) for i in range(60)]
    recipients = [r for pair in zip(emails[:60], phones, strict=True) for r in pair] + emails[60:]
    run = queue_messages(engine, recipients, AS_OF, campaign_id="crash", offers=True)
    assert len(recipients) > 3 * CLAIM, "the run should span several claim batches"
    return run


@functools.cache
def sender_processes() -> multiprocessing.context.ForkServerContext:
    """A forkserver that has imported the sender's modules once; each sender is a fork of it.

    Python 3.11's forkserver does not take the parent's sys.path, so tests/ reaches it via PYTHONPATH;
    each fork re-runs the main script (pytest's is a shim importing pytest), so pytest is preloaded too.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pytest", "crash_sender"])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), saved) if p)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return context


def start_sender(engine: Engine, mode: str, tmp_path: Path, extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """`crash_sender.run_sender` in its own process, on this test's database and journal."""
    env = {
        "WINBACK_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "WINBACK_SINK_PATH": os.environ["WINBACK_SINK_PATH"],
        "CRASH_SENDER_NOW": NOW.isoformat(),
        "CRASH_SENDER_RATE": str(RATE),
        **(extra_env or {}),
    }
    log = tmp_path / "sender.log"
    proc = sender_processes().Process(target=run_sender, args=(mode, env, str(log)), daemon=True)
    proc.start()
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def wait_until(condition: Callable[[], bool], proc, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Poll every 5 ms; fail (not hang) when the sender exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if not proc.is_alive():
            output = proc.log_path.read_text()[-3000:] if proc.log_path.exists() else ""
            pytest.fail(f"the sender exited ({proc.exitcode}) before {what}; nothing was killed:\n{output}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.join()
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def kill9(proc) -> None:  # type: ignore[no-untyped-def]
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=10)
    assert proc.exitcode == -signal.SIGKILL


class JournalLines:
    """Counts complete lines in a growing journal, reading only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.count, self._fh = path, 0, None

    def __call__(self) -> int:
        if self._fh is None:
            if not self.path.exists():
                return 0
            self._fh = self.path.open("rb")
        self.count += self._fh.read().count(b"\n")
        return self.count

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def outbox_frame(engine: Engine, run_id: int) -> pd.DataFrame:
    table = OutboxMessage.__table__
    with engine.connect() as conn:
        return pd.read_sql(
            select(table.c.id, table.c.customer_id, table.c.channel, table.c.status, table.c.last_error,
                   table.c.provider_message_id)
            .where(table.c.run_id == run_id), conn,
        )  # fmt: skip


def status_counts(engine: Engine, run_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        return outbox.status_counts(conn, run_id)


BAD_CUSTOMERS = {f"E{i:04d}" for i in BAD_EMAILS} | {f"S{i:04d}" for i in BAD_PHONES}


def skipped_customers(rows: pd.DataFrame) -> set[str]:
    """Customers whose message was skipped, checking each was skipped for its contact data."""
    skipped = rows.loc[rows["status"] == "skipped"]
    assert all(reason.startswith(CONTACT_DATA) for reason in skipped["last_error"]), skipped["last_error"].tolist()
    return set(skipped["customer_id"])


def sendgrid_message_id(exchange) -> str | None:  # type: ignore[no-untyped-def]
    """Our message id from a Mail Send request (None for a request torn by the kill)."""
    try:
        return exchange.json()["personalizations"][0]["custom_args"]["winback_message_id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


# -- kill -9 against the local sink: exactly once ---------------------------------------------------------
@pytest.mark.parametrize("kill_after", [30, 150, 250], ids=["claim1-early", "claim1-late", "claim2"])
def test_kill9_mid_send_then_rerun_sends_every_message_exactly_once(
    engine: Engine, tmp_path: Path, kill_after: int
) -> None:
    """SIGKILL a sink sender while a claim is half sent; reconcile + re-run: nothing twice, nothing lost.

    Kill points are journal line counts early and late in the first claim of 200 rows and inside the
    second (the first claim already recorded); each is at least ~0.5 s of sending away from a claim's end
    at the child's pace, so the kill lands mid-claim: some of the claim's messages journaled but not yet
    recorded, some not yet sent.
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

    sink = SinkChannel(journal)
    settled = reconcile(engine, sink, run.run_id)
    assert sum(settled.values()) == stranded
    assert settled.get("sent", 0) > 0, "messages journaled but not recorded must be settled as sent"
    assert settled.get("queued", 0) > 0, "messages of the claim that never left must go back to the queue"
    send_due(engine, {"email": sink, "sms": sink}, run_id=run.run_id, now=NOW)

    rows = outbox_frame(engine, run.run_id)
    assert set(rows["status"]) == {"sent", "skipped"}
    assert skipped_customers(rows) == BAD_CUSTOMERS
    ids = [r["message_id"] for r in sink.records()]
    assert len(ids) == journal.read_text().count("\n"), "no torn journal lines"
    duplicates = [mid for mid, n in Counter(ids).items() if n > 1]
    assert duplicates == [], f"{len(duplicates)} messages sent twice"
    assert set(ids) == set(rows.loc[rows["status"] == "sent", "id"])
    assert len(ids) == (rows["status"] == "sent").sum()


# -- kill -9 against the providers: at most once -------------------------------------------------------------
class Recording:
    """A channel that remembers the message ids it was asked to send."""

    def __init__(self, channel) -> None:  # type: ignore[no-untyped-def]
        self.channel, self.ids = channel, []

    def send(self, message):  # type: ignore[no-untyped-def]
        self.ids.append(message.message_id)
        return self.channel.send(message)


def test_kill9_mid_send_to_providers_strands_unknown_and_never_resends(
    engine: Engine, tmp_path: Path, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin
) -> None:
    """SIGKILL a sender talking to SendGrid and Twilio (the stand-ins live here, so they outlive the kill).

    After the kill the outbox cannot know which of the stranded claim reached the provider: reconcile
    without a journal makes them `unknown`, the re-run sends everything else, and no message reaches a
    provider twice. `unknown` is at most one claim (200 rows).
    """
    sg, tw = sendgrid_standin, twilio_standin
    run = queue_big_run(engine)
    env = {
        "SENDGRID_API_KEY": sg.api_key,
        "SENDGRID_API_HOST": sg.url,
        "WINBACK_EMAIL_FROM": "Winback <offers@winback.example>",
        "WINBACK_POSTAL_ADDRESS": "Winback Ltd, 1 Example Street, Springfield",
        "TWILIO_ACCOUNT_SID": tw.account_sid,
        "TWILIO_AUTH_TOKEN": tw.auth_token,
        "TWILIO_FROM_NUMBER": twilio_api.VALID_TEST_FROM,
        "TWILIO_API_BASE_URL": tw.url,
    }
    proc = start_sender(engine, "providers", tmp_path, env)
    try:
        # late in the 1st claim (~180 emails): ~0.5 s of that claim is still ahead
        wait_until(lambda: len(sg.accepted) >= 130, proc, "130 emails accepted by the SendGrid stand-in")
        kill9(proc)
    finally:
        if proc.is_alive():
            proc.kill()
    stranded = status_counts(engine, run.run_id).get("sending", 0)
    assert 0 < stranded <= CLAIM

    settled = reconcile(engine, None, run.run_id)
    assert settled["unknown"] == stranded
    assert settled.get("sent_by_event", 0) == 0  # no provider events in this test
    channels = {"email": Recording(SendGridChannel(sg.settings())), "sms": Recording(TwilioChannel(tw.settings()))}
    fast = SendLimits(email_per_second=1000, sms_per_second=1000, concurrency=8)
    report = send_due(engine, channels, run_id=run.run_id, now=NOW, limits=fast)
    assert report.counts["sent"] > 0
    resent = set(channels["email"].ids) | set(channels["sms"].ids)

    rows = outbox_frame(engine, run.run_id)
    assert set(rows["status"]) == {"sent", "unknown", "skipped"}
    unknown = set(rows.loc[rows["status"] == "unknown", "id"])
    # a bad address in the stranded claim was never recorded as skipped: it is `unknown` like its claim
    stranded_customers = set(rows.loc[rows["status"] == "unknown", "customer_id"])
    assert skipped_customers(rows) == BAD_CUSTOMERS - stranded_customers
    assert len(unknown) == stranded
    # nothing reached a provider twice, and the re-run sent nothing the crash left unknown
    email_ids = [sendgrid_message_id(e) for e in sg.received]
    assert [m for m, n in Counter(filter(None, email_ids)).items() if n > 1] == []
    assert unknown.isdisjoint(resent)
    sms_keys = [(e.fields().get("To"), e.fields().get("Body")) for e in tw.received]
    assert [k for k, n in Counter(sms_keys).items() if n > 1] == []
    # every `sent` row is a message the provider accepted, and every accepted one is `sent` or `unknown`
    accepted_email = {sendgrid_message_id(e): e.response.headers["X-Message-Id"] for e in sg.accepted}
    accepted_sids = {e.response_json()["sid"] for e in tw.accepted}
    sent = rows.loc[rows["status"] == "sent"]
    sent_email = sent.loc[sent["channel"] == "email"]
    assert set(sent_email["id"]) <= set(accepted_email)
    assert all(accepted_email[r.id] == r.provider_message_id for r in sent_email.itertuples())
    assert set(accepted_email) <= set(sent_email["id"]) | unknown
    sent_sids = set(sent.loc[sent["channel"] == "sms", "provider_message_id"])
    assert sent_sids <= accepted_sids
    unknown_sms = rows.loc[(rows["status"] == "unknown") & (rows["channel"] == "sms")]
    assert len(accepted_sids - sent_sids) <= len(unknown_sms)


# -- two senders at once ---------------------------------------------------------------------------------------
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


# -- regressions: bugs found while writing these tests --------------------------------------------------------
def test_kill9_with_email_through_sendgrid_and_sms_to_the_sink_settles_each_by_its_channel(
    engine: Engine, tmp_path: Path, sendgrid_standin: SendGridStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendGrid keys but no Twilio keys: email goes to SendGrid, SMS to the sink. After a kill -9, `send_run`
    must ask the journal only about SMS rows: stranded emails become `unknown`, never resent.

    (Was a bug: send_run and dispatch_outbox handed the sink journal to reconcile for every row, so emails
    SendGrid had accepted were missing from it, requeued and sent twice.)
    """
    sg = sendgrid_standin
    run = queue_big_run(engine)
    env = {
        "SENDGRID_API_KEY": sg.api_key,
        "SENDGRID_API_HOST": sg.url,
        "WINBACK_EMAIL_FROM": "Winback <offers@winback.example>",
        "WINBACK_POSTAL_ADDRESS": "Winback Ltd, 1 Example Street, Springfield",
    }
    proc = start_sender(engine, "providers", tmp_path, env)
    try:
        wait_until(lambda: len(sg.accepted) >= 130, proc, "130 emails accepted by the SendGrid stand-in")
        kill9(proc)
    finally:
        if proc.is_alive():
            proc.kill()
    assert status_counts(engine, run.run_id).get("sending", 0) > 0

    monkeypatch.setenv("WINBACK_EMAIL_RATE", "1000")  # send_run paces by SendLimits.from_env()
    monkeypatch.setenv("WINBACK_SMS_RATE", "1000")
    journal = SinkChannel(tmp_path / "sink.jsonl")
    email = Recording(SendGridChannel(sg.settings()))
    stages.send_run(engine, run, {"email": email, "sms": journal}, "crash", NOW)  # reconcile, then send

    rows = outbox_frame(engine, run.run_id)
    statuses = rows.groupby("channel")["status"].agg(set).to_dict()
    assert statuses == {"email": {"sent", "unknown", "skipped"}, "sms": {"sent", "skipped"}}
    unknown = set(rows.loc[rows["status"] == "unknown", "id"])
    email_ids = [m for m in map(sendgrid_message_id, sg.received) if m]
    assert len(email_ids) == len(set(email_ids)), "emails SendGrid had already accepted were sent again"
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
        kwargs={"run_id": run.run_id, "now": NOW, "claim_size": 10},
    )  # fmt: skip
    live.start()
    try:
        assert entered.wait(timeout=30)
        sink = SinkChannel(journal)
        stages.send_run(engine, run, {"email": sink, "sms": sink}, "dispatch-test", NOW)
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
        send_due(engine, {"email": Broken(), "sms": Broken()}, run_id=run.run_id, now=NOW)
    assert status_counts(engine, run.run_id) == {"sending": 5}

    sink = SinkChannel(tmp_path / "sink.jsonl")
    assert reconcile(engine, {"email": sink, "sms": sink}, run.run_id) == {"queued": 5}
    send_due(engine, {"email": sink, "sms": sink}, run_id=run.run_id, now=NOW)
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
                 limits=SendLimits(email_per_second=1000, concurrency=4))  # fmt: skip
    assert len(channel.sent) == 4
    assert status_counts(engine, run.run_id) == {"sent": 4, "sending": 1}  # nothing lost, nothing sent twice
    assert reconcile(engine, {"email": channel, "sms": channel}, run.run_id) == {"unknown": 1}


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("WINBACK_SMS_RATE", "0", "must be above zero"),
        ("WINBACK_EMAIL_RATE", "fast", "not a number"),
        ("WINBACK_SEND_CONCURRENCY", "2.5", "not a whole number"),
        ("WINBACK_SEND_PROCESSES", "-1", "must be above zero"),
    ],
)
def test_sending_settings_name_the_bad_variable(monkeypatch: pytest.MonkeyPatch, name: str, raw: str,
                                                problem: str) -> None:  # fmt: skip
    from winback.delivery.dispatch import SendLimits

    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=f"{name}='{raw}': {problem}"):
        SendLimits.from_env()
