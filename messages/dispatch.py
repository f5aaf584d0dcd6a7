"""Send what the outbox holds, safely: re-check consent at send time, claim, call, record.

A channel is anything with `send(OutgoingMessage) -> SendOutcome` (the SendGrid and Twilio adapters,
the local sink). Each message is claimed (queued → sending) and committed before its provider call and
recorded right after, so a crash anywhere leaves the outbox telling the truth.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine, select

from messages.outcomes import Failed, OutgoingMessage, SendOutcome, Sent, Skipped
from messages.channels.errors import OPTED_OUT_REASON
from messages.redact import redact_text
from warehouse.suppressions import suppress
from warehouse import outbox
from warehouse.models import Suppression
from warehouse.timeutil import utcnow

log = logging.getLogger(__name__)


class Channel(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SendOutcome: ...


@dataclass
class DispatchReport:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, status: str) -> None:
        self.counts[status] += 1

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
        backoff = random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))
        return max(backoff, retry_after or 0.0)


def _suppressed(engine: Engine, rows: list[dict]) -> set[tuple[str, str]]:
    pairs = {(r["customer_id"], r["channel"]) for r in rows}
    if not pairs:
        return set()
    with engine.connect() as conn:
        found = conn.execute(
            select(Suppression.customer_id, Suppression.channel).where(
                Suppression.customer_id.in_({c for c, _ in pairs})
            )
        ).all()
    return {(c, ch) for c, ch in found} & pairs


def to_outgoing(row: dict, campaign_id: str = "") -> OutgoingMessage:
    from messages.unsubscribe import unsubscribe_url

    return OutgoingMessage(
        message_id=row["id"],
        channel=row["channel"],
        to=row["to_address"],
        text=row["body_text"],
        subject=row["subject"],
        html=row["body_html"],
        campaign_id=campaign_id,
        customer_id=row["customer_id"],
        unsubscribe_url=unsubscribe_url(row["customer_id"], row["channel"])
        if row["channel"] == "email"
        else None,
        categories=("winback", row["step"]),
    )


class RateLimiter:
    """A token bucket: at most `per_second` sends on average, bursts up to one second's worth."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._tokens = per_second
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.per_second, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.per_second
            time.sleep(wait)


@dataclass(frozen=True)
class SendLimits:
    """Per-channel messages per second and in-flight concurrency; from WINBACK_{EMAIL,SMS}_RATE."""

    email_per_second: float = 100.0
    sms_per_second: float = 10.0
    concurrency: int = 8

    @classmethod
    def from_env(cls) -> SendLimits:
        return cls(
            email_per_second=float(os.environ.get("WINBACK_EMAIL_RATE", cls.email_per_second)),
            sms_per_second=float(os.environ.get("WINBACK_SMS_RATE", cls.sms_per_second)),
            concurrency=int(os.environ.get("WINBACK_SEND_CONCURRENCY", cls.concurrency)),
        )


def send_due(
    engine: Engine,
    channels: dict[str, Channel],
    *,
    run_id: int | None = None,
    campaign_id: str = "",
    now: dt.datetime | None = None,
    limits: SendLimits | None = None,
    retry: RetryPolicy = RetryPolicy(),
    max_messages: int | None = None,
) -> DispatchReport:
    """Send every due message (of one run, or all) until none is left.

    Rows are claimed a few at a time (twice the concurrency), so a crash leaves at most that many in
    `sending`; each outcome is committed as soon as its provider answers.
    """
    limits = limits or SendLimits.from_env()
    buckets = {"email": RateLimiter(limits.email_per_second), "sms": RateLimiter(limits.sms_per_second)}
    report = DispatchReport()
    now = now or utcnow()
    token = uuid.uuid4().hex
    claim_size = max(1, 2 * limits.concurrency)
    handled = 0
    with ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix="winback-send") as pool:
        while max_messages is None or handled < max_messages:
            with engine.begin() as conn:
                won = outbox.claim(conn, outbox.due(conn, now, claim_size, run_id), token)
                rows = outbox.load(conn, won)
            if not rows:
                break
            blocked = _suppressed(engine, rows)
            with engine.begin() as conn:
                for row in rows:
                    if (row["customer_id"], row["channel"]) in blocked:
                        outbox.mark(conn, row["id"], "skipped", last_error="suppressed at send time")
                        report.add("skipped")
            todo = [r for r in rows if (r["customer_id"], r["channel"]) not in blocked]

            def deliver(row: dict) -> tuple[dict, SendOutcome]:
                buckets[row["channel"]].acquire()
                return row, channels[row["channel"]].send(to_outgoing(row, campaign_id))

            for future in as_completed([pool.submit(deliver, r) for r in todo]):
                row, outcome = future.result()
                report.add(_record(engine, row, outcome, retry, now))
            handled += len(rows)
    return report


def _record(engine: Engine, row: dict, outcome: SendOutcome, retry: RetryPolicy, now: dt.datetime) -> str:
    attempts = int(row["attempts"] or 0) + 1
    with engine.begin() as conn:
        if isinstance(outcome, Sent):
            outbox.mark(conn, row["id"], "sent", provider=outcome.provider,
                        provider_message_id=outcome.provider_message_id)  # fmt: skip
            return "sent"
        if isinstance(outcome, Skipped):
            outbox.mark(conn, row["id"], "skipped", last_error=outcome.reason)
            return "skipped"
        assert isinstance(outcome, Failed)
        reason = redact_text(outcome.reason)
        if outcome.reason == OPTED_OUT_REASON:
            suppress(conn, row["customer_id"], row["channel"], "stop", f"{row['channel']} provider", now)
        if outcome.retryable and attempts < retry.max_attempts:
            later = now + dt.timedelta(seconds=retry.delay(attempts, outcome.retry_after))
            outbox.mark(conn, row["id"], "queued", not_before=later, last_error=reason)
            log.warning("message %s: retryable failure, attempt %d: %s", row["id"], attempts, reason)
            return "retry"
        outbox.mark(conn, row["id"], "failed", last_error=reason)
        return "failed"


def reconcile(engine: Engine, sink_like: object | None = None, run_id: int | None = None) -> dict[str, int]:
    """Settle rows a crash left in `sending`.

    With a journal that can answer "did it leave?" (the local sink), each row becomes `sent` or goes
    back to `queued`: exactly once. Without one (a provider with no lookup by our id), the row becomes
    `unknown`: never resent automatically, since a second apology is worse than a late one; provider
    webhooks carrying our message id later move it to `sent`.
    """
    with engine.begin() as conn:
        stale = outbox.stale_sending(conn, run_id)
    if not stale:
        return {}
    has_sent = getattr(sink_like, "has_sent", None)
    counts: Counter[str] = Counter()
    with engine.begin() as conn:
        if has_sent is not None:
            left = has_sent(set(stale))
            for mid in stale:
                status = "sent" if mid in left else "queued"
                outbox.mark(conn, mid, status, provider="sink" if mid in left else None)
                counts[status] += 1
        else:
            for mid in stale:
                outbox.mark(conn, mid, "unknown", last_error="crashed between claim and provider answer")
                counts["unknown"] += 1
    return dict(counts)
