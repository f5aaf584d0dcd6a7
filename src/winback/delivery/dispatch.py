"""Send what the outbox holds, safely: claim, re-check at send time, call, record.

A channel is anything with `send(OutgoingMessage) -> SendOutcome` (the SendGrid and Twilio adapters,
the local sink). Each message is claimed (queued → sending) and committed before its provider call and
recorded right after, so a crash anywhere leaves the outbox telling the truth.

A message can wait in the outbox for hours (quiet hours) or days (journey follow-ups, retries), and the
customer's record moves meanwhile. So each claim is checked again, in one lookup per claim: a customer
erased from the customers table, flagged do-not-contact or fraud, whose consent for the channel is
withdrawn, or who opted out through winback is skipped with that reason; a recipient for whom it is now
night (quiet hours, in the zone stored with the row) waits: the row goes back to `queued` until their
morning, which is not an attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Protocol

from sqlalchemy import Connection, Engine, select

from winback.channels.errors import OPTED_OUT_REASON
from winback.channels.outcomes import Failed, OutgoingMessage, SendOutcome, Sent, Skipped
from winback.delivery.events import reconcile_unknown_from_events
from winback.errors import ConfigError, DeliveryError
from winback.messages.contact_data import locale_region, normalise_email, normalise_phone
from winback.messages.quiet_hours import QuietHoursCheck, next_allowed, send_window
from winback.messages.redact import redact_text
from winback.messages.render import Brand, RenderError, build_context, render
from winback.messages.unsubscribe import UnsubscribeLinks, configured_links
from winback.settings import Settings
from winback.warehouse import outbox
from winback.warehouse.models import Suppression
from winback.warehouse.queries import SendTimeFlags, send_time_flags
from winback.warehouse.source import SourceTables, missing_tables
from winback.warehouse.suppressions import suppress
from winback.warehouse.timeutil import utcnow

log = logging.getLogger(__name__)


class Channel(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SendOutcome: ...


@dataclass
class DispatchReport:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] += n

    def merge(self, counts: dict[str, int]) -> None:
        """Add another sender's counts (a helper's report, or a later pass of this one)."""
        for status, n in counts.items():
            self.add(status, int(n))

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


ERASED = "customer erased: not in the customers table at send time"
DO_NOT_CONTACT = "do-not-contact at send time"
FRAUD_FLAG = "fraud flag at send time"
CONSENT_WITHDRAWN = "consent withdrawn at send time"
SUPPRESSED = "suppressed at send time"
HELD = "held_quiet_hours"  # report key: rows put back until the recipient's morning


class SourceTablesMissing(ConfigError):
    """The business's customers or consents table is not where the mapping says: consent cannot be re-checked."""


_warned_no_source = False


def send_time_source(engine: Engine, tables: SourceTables | None = None) -> SourceTables | None:
    """The tables consent is re-checked in at send time: `tables`, by default those WINBACK_SOURCE_MAPPING names.

    A database with neither a customers nor a consents table and no mapping configured holds an outbox and
    nothing else (the tests' senders, a bare outbox): there is no record to check, which is logged once,
    and only winback's own opt-outs apply. Any other missing table is a misconfiguration, refused before a
    row is claimed: sending on without the check would ignore every withdrawal.
    """
    global _warned_no_source
    tables = tables or SourceTables.from_settings(Settings())
    configured = tables.mapped
    wanted = (tables.customers, tables.consents)
    missing = missing_tables(engine, wanted)
    if not missing:
        return tables
    if configured or len(missing) < len(wanted):
        raise SourceTablesMissing(f"send-time consent check: source table(s) not found: {', '.join(missing)}")
    if not _warned_no_source:
        log.warning("no customers or consents table in this database: consent is not re-checked at send time")
        _warned_no_source = True
    return None


def _blocked_at_send_time(engine: Engine, source: SourceTables | None, rows: list[dict]) -> dict[str, str]:
    """Row id → why it must not go now (`_block_reason`); one lookup per claim, by customer id."""
    customers = list({r["customer_id"] for r in rows})
    with engine.connect() as conn:
        found = conn.execute(
            select(Suppression.customer_id, Suppression.channel).where(Suppression.customer_id.in_(customers))
        )
        suppressed = {(c, ch) for c, ch in found}
        flags = send_time_flags(conn, source, customers) if source is not None else None
    blocked = {}
    for row in rows:
        reason = _block_reason(row["customer_id"], row["channel"], flags, suppressed)
        if reason is not None:
            blocked[row["id"]] = reason
    return blocked


def _block_reason(
    customer: str, channel: str, flags: SendTimeFlags | None, suppressed: set[tuple[str, str]]
) -> str | None:
    """The first of: erased, do-not-contact, fraud, consent withdrawn, opted out through winback; else None."""
    if flags is not None:
        if customer not in flags.found:
            return ERASED
        if customer in flags.do_not_contact:
            return DO_NOT_CONTACT
        if customer in flags.fraud_flag:
            return FRAUD_FLAG
        if (customer, channel) not in flags.granted:
            return CONSENT_WITHDRAWN
    return SUPPRESSED if (customer, channel) in suppressed else None


def _give_back(engine: Engine, rows: list[dict], token: str) -> None:
    """Return a claim untouched when its checks could not run: left `sending`, a provider's rows would
    become `unknown` and never go. Best effort: if this fails too, `reconcile` settles them as after a crash."""
    try:
        with engine.begin() as conn:
            outbox.release(conn, {r["id"]: r["not_before"] for r in rows}, token)
    except Exception:
        log.exception("could not give back %d claimed message(s) after a failed send-time check", len(rows))


LOCAL_CLAIM_SIZE = 2000


@dataclass(frozen=True)
class Prepared:
    """A claimed row made ready: the message to send, or the reason it cannot be."""

    row: dict
    message: OutgoingMessage | None = None
    outcome: SendOutcome | None = None


def prepare(
    row: dict,
    campaign_id: str = "",
    brand: Brand = Brand(),  # noqa: B008
    links: UnsubscribeLinks | None = None,
) -> Prepared:
    """Check the address and render the message; bad data becomes an outcome, never an exception."""
    channel = row["channel"]
    if channel == "email":
        address, problem = normalise_email(row["to_address"])
    else:
        address, problem = normalise_phone(row["to_address"], locale_region(row["context"].get("locale")))
    if problem:
        return Prepared(row, outcome=Skipped(problem))
    link = (links or configured_links()).url(row["customer_id"], channel)
    try:
        rendered = render(row["template"], channel, build_context(row["context"], brand, link))
    except (RenderError, ValueError) as exc:
        return Prepared(row, outcome=Failed(f"render: {exc}", retryable=False))
    message = OutgoingMessage(
        message_id=row["id"],
        channel=channel,
        to=address,
        text=rendered.text,
        subject=rendered.subject,
        html=rendered.html,
        campaign_id=campaign_id,
        customer_id=row["customer_id"],
        unsubscribe_url=link if channel == "email" else None,
        categories=("winback", row["step"]),
    )
    return Prepared(row, message=message)


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
    """Per-channel messages per second, in-flight concurrency and sender processes.

    From WINBACK_EMAIL_RATE, WINBACK_SMS_RATE, WINBACK_SEND_CONCURRENCY and WINBACK_SEND_PROCESSES
    (default: one per CPU; used only for large sends, see delivery.parallel_send).
    """

    email_per_second: float = 100.0
    sms_per_second: float = 10.0
    concurrency: int = 8
    processes: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> SendLimits:
        return cls(
            email_per_second=settings.email_rate,
            sms_per_second=settings.sms_rate,
            concurrency=settings.send_concurrency,
            processes=settings.send_processes or os.cpu_count() or 1,
        )

    @classmethod
    def from_env(cls) -> SendLimits:
        """The environment's limits: for a caller that was handed none."""
        return cls.from_settings(Settings())

    def shared_by(self, senders: int) -> SendLimits:
        """Each of `senders` parallel senders' part: together they keep the per-channel rates."""
        return replace(
            self,
            email_per_second=self.email_per_second / senders,
            sms_per_second=self.sms_per_second / senders,
            processes=1,
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
    claim_size: int = 200,
    stop_check: Callable[[list[dict]], dict[str, str]] | None = None,
    source: SourceTables | None = None,
    links: UnsubscribeLinks | None = None,
) -> DispatchReport:
    """Send every due message (of one run, or all) until none is left.

    Rows are claimed `claim_size` at a time (committed as `sending` before any provider call), checked
    again (see the module docstring; `source` is where consent is read, by default the configured
    mapping's tables), sent concurrently within the per-channel rate, and their outcomes committed
    together; a crash therefore leaves at most one claim's rows in `sending`, which `reconcile` settles.
    When every channel is a local journal (reconciled exactly, never `unknown`), claims are larger: fewer
    commits, same guarantee. `limits` and `links` (unsubscribe links) default to the configured ones.
    """
    if not any(getattr(channel, "rate_limited", True) for channel in channels.values()):
        claim_size = max(claim_size, LOCAL_CLAIM_SIZE)
    limits = limits or SendLimits.from_env()
    links = links or configured_links()
    source = source if source is not None else send_time_source(engine)  # a caller's own tables are trusted
    report = DispatchReport()
    now = now or utcnow()
    token = outbox.sender_token()
    started = time.monotonic()  # `now` may be simulated: measure elapsed time, add it to `now`
    outbox.ACTIVE_TOKENS.add(token)
    try:
        return _send_loop(engine, channels, run_id, campaign_id, now, limits, retry, max_messages, claim_size,
                          stop_check, source, token, started, report, links)  # fmt: skip
    finally:
        outbox.ACTIVE_TOKENS.discard(token)


def _send_loop(
    engine: Engine,
    channels: dict[str, Channel],
    run_id: int | None,
    campaign_id: str,
    now: dt.datetime,
    limits: SendLimits,
    retry: RetryPolicy,
    max_messages: int | None,
    claim_size: int,
    stop_check: Callable[[list[dict]], dict[str, str]] | None,
    source: SourceTables | None,
    token: str,
    started: float,
    report: DispatchReport,
    links: UnsubscribeLinks,
) -> DispatchReport:
    buckets = {"email": RateLimiter(limits.email_per_second), "sms": RateLimiter(limits.sms_per_second)}
    handled = 0
    lost_races = 0
    with ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix="winback-send") as pool:
        while max_messages is None or handled < max_messages:
            with engine.begin() as conn:
                due_ids = outbox.due(conn, now, claim_size, run_id)
                rows = outbox.claim(conn, due_ids, token)
            if not rows:
                lost_races += 1
                if not due_ids or lost_races > 50:
                    break
                continue  # another sender won this batch: take the next one
            lost_races = 0
            try:
                blocked = _blocked_at_send_time(engine, source, rows)
                stopped = stop_check(rows) if stop_check else {}
            except Exception:
                _give_back(engine, rows, token)
                raise
            quiet = QuietHoursCheck(now + dt.timedelta(seconds=time.monotonic() - started))
            held: dict[str, dt.datetime] = {}
            ready: list[Prepared] = []
            done: list[tuple[Prepared, SendOutcome]] = []
            for row in rows:
                reason = blocked.get(row["id"]) or stopped.get(row["id"])
                if reason is not None:
                    done.append((Prepared(row), Skipped(reason)))
                    continue
                until = quiet.held_until(row["context"])
                if until is not None:  # night where the recipient is: back to the queue until their morning
                    held[row["id"]] = until
                    continue
                prepared = prepare(row, campaign_id, links=links)
                if prepared.outcome is not None:
                    done.append((prepared, prepared.outcome))
                else:
                    ready.append(prepared)

            if held:  # committed before any provider call: a crash mid-send must not leave them `sending`
                with engine.begin() as conn:
                    outbox.release(conn, held, token)
                report.add(HELD, len(held))

            def deliver(item: Prepared) -> tuple[Prepared, SendOutcome | Exception]:
                assert item.message is not None
                channel = channels[item.message.channel]
                if getattr(channel, "rate_limited", True):
                    buckets[item.message.channel].acquire()
                try:
                    return item, channel.send(item.message)
                except Exception as exc:  # an adapter's bug, not a provider's answer: sent or not is unknown
                    return item, exc

            # providers are network-bound: send them concurrently; the local sink is not worth a thread hop
            remote = [p for p in ready if getattr(channels[p.row["channel"]], "rate_limited", True)]
            local = [p for p in ready if not getattr(channels[p.row["channel"]], "rate_limited", True)]
            attempts = [deliver(p) for p in local]
            attempts += [f.result() for f in as_completed([pool.submit(deliver, p) for p in remote])]
            crashed = [(item, outcome) for item, outcome in attempts if isinstance(outcome, Exception)]
            done += [(item, outcome) for item, outcome in attempts if not isinstance(outcome, Exception)]
            with engine.begin() as conn:
                answered = now + dt.timedelta(seconds=time.monotonic() - started)  # Retry-After counts from here
                changes = [_outcome_change(conn, item, outcome, retry, answered) for item, outcome in done]
                outbox.apply_changes(conn, changes)
            for change in changes:
                report.add(change["_kind"])
            handled += len(rows)
            if crashed:  # the others' outcomes are committed; these stay `sending` for reconcile to settle
                raise SendCrashed(crashed)
    return report


class SendCrashed(DeliveryError):
    """A channel adapter raised instead of answering: the sender stops, its other outcomes kept.

    Whether those messages reached the provider is unknown, so their rows stay `sending`; `reconcile`
    settles them (the sink's journal exactly, a provider's as `unknown`), exactly as after a crash.
    """

    def __init__(self, crashed: list[tuple[Prepared, Exception]]) -> None:
        first = crashed[0][1]
        ids = ", ".join(item.row["id"] for item, _ in crashed[:5]) + (", …" if len(crashed) > 5 else "")
        super().__init__(
            f"{len(crashed)} message(s) left `sending` for reconcile ({ids}): "
            f"{type(first).__name__}: {redact_text(str(first))}"
        )
        self.__cause__ = first


def _outcome_change(
    conn: Connection, item: Prepared, outcome: SendOutcome, retry: RetryPolicy, now: dt.datetime
) -> dict:
    """The outbox update an outcome calls for (applied in one batch); suppresses on a provider opt-out."""
    row = item.row
    change = {
        "_id": row["id"],
        "status": "failed",
        "provider": row.get("provider"),
        "provider_message_id": row.get("provider_message_id"),
        "last_error": None,
        "not_before": row["not_before"],
        "sent_at": None,
        "subject": item.message.subject if item.message else None,
        "body_text": item.message.text if item.message else None,
    }
    if isinstance(outcome, Sent):
        change.update(
            status="sent",
            provider=outcome.provider,
            provider_message_id=outcome.provider_message_id,
            sent_at=now,  # the sender's clock, as not_before: simulated in the demo and tests
            _kind="sent",
        )
        return change
    if isinstance(outcome, Skipped):
        change.update(status="skipped", last_error=outcome.reason, _kind="skipped")
        return change
    assert isinstance(outcome, Failed)
    reason = redact_text(outcome.reason)
    if outcome.reason == OPTED_OUT_REASON:
        suppress(conn, row["customer_id"], row["channel"], "stop", f"{row['channel']} provider", now)
    if outcome.retryable and int(row["attempts"] or 0) < retry.max_attempts:
        later = now + dt.timedelta(seconds=retry.delay(int(row["attempts"] or 0), outcome.retry_after))
        window = send_window(row["context"])
        if window is not None:  # a retry must not land in the recipient's night either
            later = next_allowed(later, *window)
        log.warning("message %s: retryable failure, attempt %s: %s", row["id"], row["attempts"], reason)
        change.update(status="queued", not_before=later, last_error=reason, subject=None, body_text=None, _kind="retry")
        return change
    change.update(status="failed", last_error=reason, _kind="failed")
    return change


def reconcile(
    engine: Engine, journals: dict[str, object] | object | None = None, run_id: int | None = None
) -> dict[str, int]:
    """Settle rows a crashed sender left in `sending` (a live sender's claim is left alone).

    A row whose channel is served by a journal that can answer "did it leave?" (the local sink) becomes
    `sent` or goes back to `queued`: exactly once. Any other row (sent through a provider with no lookup
    by our id) becomes `unknown`: never resent automatically, since a second apology is worse than a
    late one; provider webhooks carrying our message id move it to `sent`.

    `journals` is the channel map a sender uses ({"email": ..., "sms": ...}), or one journal for every
    channel, or None.
    """
    with engine.begin() as conn:
        stale = outbox.stale_sending(conn, run_id)
        rows = outbox.load(conn, stale)
    if not rows:
        return {}

    def journal_for(channel: str) -> object | None:
        source = journals.get(channel) if isinstance(journals, dict) else journals
        return source if hasattr(source, "has_sent") else None

    counts: Counter[str] = Counter()
    with engine.begin() as conn:
        for channel in {r["channel"] for r in rows}:
            ids = {r["id"] for r in rows if r["channel"] == channel}
            journal = journal_for(channel)
            if journal is not None:
                left = journal.has_sent(ids)  # type: ignore[attr-defined]
                for mid in ids:
                    status = "sent" if mid in left else "queued"
                    outbox.mark(conn, mid, status, provider="sink" if mid in left else None)
                    counts[status] += 1
            else:
                for mid in ids:
                    outbox.mark(conn, mid, "unknown", last_error="crashed between claim and provider answer")
                    counts["unknown"] += 1
        # provider events that arrived while a row was still `sending` settle it now
        settled_by_events = reconcile_unknown_from_events(conn, utcnow())
        if settled_by_events:
            counts["sent_by_event"] = settled_by_events
    return dict(counts)
