"""Retries, refusals, opt-outs and pacing: `send_due` with the real adapters against the provider stand-ins.

What a provider answer does to an outbox row (delivery/prepare.py `outcome_change`):
- 429 / 5xx / dropped connection: retryable, back to `queued` with `not_before` = now + backoff (exponential,
  full jitter, never sooner than the provider's Retry-After), until `RetryPolicy.max_attempts`, then `failed`
- any other 4xx: `failed` at once with the provider's reason, never retried
- Twilio 21610 (the recipient replied STOP): `failed`, and the customer's SMS is suppressed
- a suppression recorded after queueing: `skipped` at send time without calling the provider
- a retry never lands in the recipient's quiet hours: its `not_before` moves on to their morning
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from typing import Any

import pytest
from conftest import AS_OF, LINKS, local_source
from crash_sender import queue_messages
from sqlalchemy import Engine, select
from standins import sendgrid_api, twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TwilioStandin

from winback.channels.sendgrid import SendGridChannel
from winback.channels.twilio import TwilioChannel
from winback.delivery import limits as send_limits
from winback.delivery.dispatch import DispatchReport, RetryPolicy, SendLimits, SharedRateLimiter, send_due
from winback.warehouse.models import OutboxMessage, Suppression
from winback.warehouse.suppressions import suppress
from winback.warehouse.timeutil import utc, utcnow

sendgrid_standin = sendgrid_api.sendgrid_standin
twilio_standin = twilio_api.twilio_standin

NOW = AS_OF + dt.timedelta(days=1)


def channels(sg: SendGridStandin, tw: TwilioStandin) -> dict:
    return {"email": SendGridChannel(sg.settings()), "sms": TwilioChannel(tw.settings())}


def send(engine: Engine, sg: SendGridStandin, tw: TwilioStandin, **options: Any) -> DispatchReport:
    """One `send_due` on the real adapters against the stand-ins, with the source and links the edge hands it."""
    return send_due(engine, channels(sg, tw), source=local_source(engine), links=LINKS, **options)


def outbox_rows(engine: Engine, run_id: int) -> dict[str, dict]:
    """The run's rows by customer id, with `not_before` made aware (SQLite hands back naive UTC)."""
    table = OutboxMessage.__table__
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(table).where(table.c.run_id == run_id)).mappings()]
    return {r["customer_id"]: {**r, "not_before": utc(r["not_before"])} for r in rows}


def sendgrid_ids(sg: SendGridStandin) -> list[str]:
    return [e.json()["personalizations"][0]["custom_args"]["winback_message_id"] for e in sg.received]


@pytest.fixture
def seeded_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff jitter from a seeded generator, so delays are the same on every run."""
    monkeypatch.setattr(send_limits, "random", random.Random(20261102))


# -- retryable answers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("channel", "address"), [("email", "c1@example.com"), ("sms", "+14155552671")])
def test_429_waits_at_least_retry_after(
    engine: Engine, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin, channel: str, address: str
) -> None:
    standin = sendgrid_standin if channel == "email" else twilio_standin
    standin.fail_next(429, retry_after=120)
    run = queue_messages(engine, [("C1", channel, address)], AS_OF)

    assert send(engine, sendgrid_standin, twilio_standin, run_id=run.run_id, now=NOW).as_dict() == {"retry": 1}
    row = outbox_rows(engine, run.run_id)["C1"]
    assert row["status"] == "queued"
    assert row["attempts"] == 1
    assert row["not_before"] >= NOW + dt.timedelta(seconds=120)
    assert "too many requests" in row["last_error"].lower()
    assert len(standin.received) == 1

    # not due before the provider's Retry-After; sent once it is
    early = send(engine, sendgrid_standin, twilio_standin, now=NOW + dt.timedelta(seconds=119))
    assert early.as_dict() == {}
    assert len(standin.received) == 1
    later = send(engine, sendgrid_standin, twilio_standin, now=row["not_before"])
    assert later.as_dict() == {"sent": 1}
    assert outbox_rows(engine, run.run_id)["C1"]["attempts"] == 2
    assert len(standin.accepted) == 1


@pytest.mark.usefixtures("seeded_jitter")
def test_server_errors_are_retried_with_exponential_backoff_then_sent(
    engine: Engine, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin
) -> None:
    sendgrid_standin.fail_next(500, times=3)
    run = queue_messages(engine, [("C1", "email", "c1@example.com")], AS_OF)
    policy = RetryPolicy(base_seconds=30, cap_seconds=3600)
    now = NOW
    for attempt in (1, 2, 3):
        report = send(engine, sendgrid_standin, twilio_standin, now=now, retry=policy)
        assert report.as_dict() == {"retry": 1}
        row = outbox_rows(engine, run.run_id)["C1"]
        assert (row["status"], row["attempts"], row["last_error"]) == ("queued", attempt, "internal error")
        delay = (row["not_before"] - now).total_seconds()
        assert 0 < delay <= 30 * 2 ** (attempt - 1), f"attempt {attempt}: backoff window doubles"
        now = row["not_before"]

    assert send(engine, sendgrid_standin, twilio_standin, now=now, retry=policy).as_dict() == {"sent": 1}
    row = outbox_rows(engine, run.run_id)["C1"]
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 4, None)
    assert [e.status for e in sendgrid_standin.received] == [500, 500, 500, 202]


@pytest.mark.usefixtures("seeded_jitter")
@pytest.mark.parametrize("failure", ["twilio-503", "sendgrid-dropped-connection"])
def test_retryable_failures_become_failed_after_max_attempts(
    engine: Engine, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin, failure: str
) -> None:
    if failure == "twilio-503":
        standin, recipient, reason = twilio_standin, ("C1", "sms", "+14155552671"), "Service unavailable"
        standin.fail_next(503, times=10)
    else:
        standin, recipient, reason = sendgrid_standin, ("C1", "email", "c1@example.com"), "cannot reach sendgrid"
        standin.disconnect_next(times=10)
    run = queue_messages(engine, [recipient], AS_OF)
    policy = RetryPolicy(max_attempts=3, base_seconds=1, cap_seconds=10)
    now = NOW
    for expected in ("retry", "retry", "failed"):
        report = send(engine, sendgrid_standin, twilio_standin, now=now, retry=policy)
        assert report.as_dict() == {expected: 1}
        now += dt.timedelta(minutes=1)
    row = outbox_rows(engine, run.run_id)["C1"]
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert reason in row["last_error"]
    assert len(standin.received) == 3
    assert send(engine, sendgrid_standin, twilio_standin, now=now + dt.timedelta(days=1)).as_dict() == {}
    assert len(standin.received) == 3


def test_a_retry_waits_for_the_recipients_morning_rather_than_landing_in_quiet_hours(
    engine: Engine, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin
) -> None:
    """(Was: a 20:40 failure retried at 21:05 London time, inside quiet hours 21:00-08:00.)"""
    from test_send_time_checks import queue_planned

    evening = dt.datetime(2026, 11, 2, 20, 40, tzinfo=dt.UTC)  # London is on GMT in November
    person = {"customer_id": "C1", "first_name": "Ada", "email": "c1@example.com", "phone": None,
              "locale": "en_GB", "time_zone": "Europe/London"}  # fmt: skip
    run = queue_planned(engine, [person], evening)
    sendgrid_standin.fail_next(429, retry_after=1500)  # try again in 25 minutes: 21:05
    report = send(engine, sendgrid_standin, twilio_standin, run_id=run.run_id, now=evening)
    assert report.as_dict() == {"retry": 1}
    row = outbox_rows(engine, run.run_id)["C1"]
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert row["not_before"] == dt.datetime(2026, 11, 3, 8, 0, tzinfo=dt.UTC)


# -- refusals -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "address", "reason"),
    [
        ("email", "anna@bücher.example", "Does not contain a valid address."),  # valid for us, not for SendGrid
        ("sms", "+15005550001", "is not a valid phone number"),  # Twilio error 21211
    ],
    ids=["sendgrid-400", "twilio-21211"],
)
def test_rejected_message_fails_at_once_with_the_providers_reason(
    engine: Engine,
    sendgrid_standin: SendGridStandin,
    twilio_standin: TwilioStandin,
    channel: str,
    address: str,
    reason: str,
) -> None:
    standin = sendgrid_standin if channel == "email" else twilio_standin
    run = queue_messages(engine, [("C1", channel, address)], AS_OF)
    assert send(engine, sendgrid_standin, twilio_standin, now=NOW).as_dict() == {"failed": 1}
    row = outbox_rows(engine, run.run_id)["C1"]
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert reason in row["last_error"]
    assert address not in row["last_error"], "the recipient is masked in stored errors"
    assert [e.status for e in standin.received] == [400]
    assert send(engine, sendgrid_standin, twilio_standin, now=NOW + dt.timedelta(days=1)).as_dict() == {}
    assert len(standin.received) == 1


def test_twilio_opt_out_fails_and_suppresses_the_customers_sms(
    engine: Engine, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin
) -> None:
    run = queue_messages(
        engine, [("C1", "sms", twilio_api.OPTED_OUT_TEST_NUMBER), ("C2", "sms", "+14155552671")], AS_OF
    )
    report = send(engine, sendgrid_standin, twilio_standin, run_id=run.run_id, now=NOW)
    assert report.as_dict() == {"failed": 1, "sent": 1}
    row = outbox_rows(engine, run.run_id)["C1"]
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "recipient opted out")
    with engine.connect() as conn:
        suppressed = conn.execute(select(Suppression.customer_id, Suppression.channel, Suppression.reason)).all()
    assert [tuple(s) for s in suppressed] == [("C1", "sms", "stop")]

    # the customer's next SMS (another campaign) is stopped before it reaches Twilio
    later = queue_messages(engine, [("C1", "sms", twilio_api.OPTED_OUT_TEST_NUMBER)], AS_OF, campaign_id="later")
    assert send(engine, sendgrid_standin, twilio_standin, now=NOW).as_dict() == {"skipped": 1}
    assert outbox_rows(engine, later.run_id)["C1"]["last_error"] == "suppressed at send time"
    assert len(twilio_standin.received) == 2


def test_suppression_recorded_after_queueing_skips_without_calling_the_provider(
    engine: Engine, sendgrid_standin: SendGridStandin, twilio_standin: TwilioStandin
) -> None:
    recipients = [("C1", "email", "c1@example.com"), ("C2", "sms", "+14155552671"), ("C3", "email", "c3@example.com")]
    run = queue_messages(engine, recipients, AS_OF)
    with engine.begin() as conn:  # opt-outs arriving (webhooks, replies) after the run was queued
        suppress(conn, "C1", "email", "unsubscribe", "sendgrid webhook", AS_OF)
        suppress(conn, "C2", "sms", "stop", "twilio webhook", AS_OF)
        suppress(conn, "C3", "sms", "stop", "twilio webhook", AS_OF)  # another channel: C3's email still goes

    report = send(engine, sendgrid_standin, twilio_standin, run_id=run.run_id, now=NOW)
    assert report.as_dict() == {"skipped": 2, "sent": 1}
    rows = outbox_rows(engine, run.run_id)
    assert {c: (r["status"], r["last_error"]) for c, r in rows.items()} == {
        "C1": ("skipped", "suppressed at send time"),
        "C2": ("skipped", "suppressed at send time"),
        "C3": ("sent", None),
    }
    assert sendgrid_ids(sendgrid_standin) == [rows["C3"]["id"]]
    assert twilio_standin.received == []


# -- the backoff itself ----------------------------------------------------------------------------------------
@pytest.mark.usefixtures("seeded_jitter")
def test_retry_delay_is_full_jitter_within_a_capped_doubling_window() -> None:
    policy = RetryPolicy(base_seconds=30, cap_seconds=600)
    for attempts in range(0, 12):
        window = min(600, 30 * 2 ** max(0, attempts - 1))
        draws = [policy.delay(attempts, None) for _ in range(200)]
        assert all(0 <= d <= window for d in draws), f"attempt {attempts}: outside [0, {window}]"
        assert min(draws) < 0.2 * window and max(draws) > 0.8 * window, "jitter spreads over the whole window"


@pytest.mark.usefixtures("seeded_jitter")
def test_retry_delay_is_never_sooner_than_retry_after() -> None:
    policy = RetryPolicy(base_seconds=30, cap_seconds=600)
    for attempts in (1, 2, 5, 10):
        for retry_after in (0.0, 0.5, 45.0, 599.0):
            assert policy.delay(attempts, retry_after) >= retry_after
    # the provider's word beats the cap: a 2-hour Retry-After is honoured, not cut to 10 minutes
    assert policy.delay(3, 7200.0) == 7200.0


def test_retry_after_counts_from_the_providers_answer(engine: Engine, sendgrid_standin: SendGridStandin) -> None:
    """Two emails at 1/s, one per claim: the second is answered 429 (Retry-After 120) ~1 s into the call."""
    sg = sendgrid_standin
    run = queue_messages(engine, [("C1", "email", "c1@example.com"), ("C2", "email", "c2@example.com")], AS_OF)
    answered: list[dt.datetime] = []

    class FailSecond:
        def __init__(self) -> None:
            self.channel, self.calls = SendGridChannel(sg.settings()), 0

        def send(self, message):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 2:
                sg.fail_next(429, retry_after=120)
            outcome = self.channel.send(message)
            answered.append(utcnow())
            return outcome

    channel = FailSecond()
    report = send_due(engine, {"email": channel, "sms": channel}, run_id=run.run_id, claim_size=1,
                      limits=SendLimits(email_per_second=1, concurrency=1),
                      source=local_source(engine), links=LINKS)  # fmt: skip
    assert report.as_dict() == {"sent": 1, "retry": 1}
    retried = next(r for r in outbox_rows(engine, run.run_id).values() if r["status"] == "queued")
    assert retried["not_before"] >= answered[1] + dt.timedelta(seconds=120)


# -- pacing --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("threads", [1, 4])
def test_shared_rate_limiter_holds_its_rate(engine: Engine, threads: int) -> None:
    """50/s: the bucket starts full (50 at once), so over W seconds at most 50 + 50·W acquisitions, and 100 take
    at least the second the other 50 need, however many threads take them."""
    limiter = SharedRateLimiter(engine, "email", per_second=50)
    stamps: list[float] = []

    def take(n: int) -> None:
        for _ in range(n):
            limiter.acquire()
            stamps.append(time.monotonic())

    workers = [threading.Thread(target=take, args=(100 // threads,)) for _ in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(stamps) == 100
    assert 50 + 50 * (max(stamps) - start) + 1 >= 100


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_send_due_paces_provider_sends(engine: Engine, sendgrid_standin: SendGridStandin) -> None:
    """300 emails at 100/s with 8 in flight: 100 at once, 200 more over ~2 s.

    Pacing applies to providers; the local sink is exempt (`SinkChannel.rate_limited = False`).
    """
    run = queue_messages(engine, [(f"C{i:03d}", "email", f"c{i}@example.com") for i in range(300)], AS_OF)
    start = time.monotonic()
    report = send_due(engine, {"email": SendGridChannel(sendgrid_standin.settings())}, run_id=run.run_id, now=NOW,
                      limits=SendLimits(email_per_second=100, concurrency=8),
                      source=local_source(engine), links=LINKS)  # fmt: skip
    elapsed = time.monotonic() - start
    assert report.as_dict() == {"sent": 300}
    assert len(sendgrid_standin.accepted) == 300
    assert 1.8 <= elapsed <= 10.0
