"""Send what the outbox holds, safely: claim, re-check at send time, start, call, record.

A channel is anything with `send(OutgoingMessage) -> SendOutcome` (the SendGrid and Twilio adapters,
the local sink). Rows are claimed (queued → sending) and committed in batches; then each row is marked
started (committed) just before its own provider call, and its answer committed as it arrives
(`delivery.recorder`), so a crash anywhere leaves the outbox telling the truth, and at most the calls in
flight `unknown`.

A message can wait in the outbox for hours (quiet hours) or days (journey follow-ups, retries), and the
customer's record moves meanwhile. So each claim is checked again (`delivery.checks`); a recipient for
whom it is now night (quiet hours, in the zone stored with the row) waits: the row goes back to `queued`
until their morning, which is not an attempt.

The pieces live beside this module: `limits` (rates, concurrency, retries), `checks` (send-time checks),
`prepare` (render; an answer made an outbox change), `recorder` (starts and answers committed),
`reconcile` and `settle` (after a crash). Their public names are importable from here as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine

from winback.channels.outcomes import OutgoingMessage, SendOutcome, Skipped
from winback.delivery.checks import (
    CONSENT_WITHDRAWN,
    DO_NOT_CONTACT,
    ERASED,
    FRAUD_FLAG,
    SUPPRESSED,
    SourceTablesMissing,
    checked_at_send_time,
    give_back,
    send_time_source,
)
from winback.delivery.limits import RetryPolicy, SendLimits, SharedRateLimiter
from winback.delivery.prepare import Prepared, outcome_change, prepare
from winback.delivery.reconcile import reconcile
from winback.delivery.recorder import ClaimRecorder
from winback.errors import DeliveryError
from winback.messages.quiet_hours import QuietHoursCheck
from winback.messages.redact import redact_text
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.warehouse import outbox
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utcnow

__all__ = [
    "CONSENT_WITHDRAWN", "DO_NOT_CONTACT", "ERASED", "FRAUD_FLAG", "HELD", "LOCAL_CLAIM_SIZE", "SUPPRESSED",
    "Channel", "DispatchReport", "Prepared", "RetryPolicy", "SendCrashed", "SendLimits", "SharedRateLimiter",
    "SourceTablesMissing", "prepare", "reconcile", "send_due", "send_time_source",
]  # fmt: skip

HELD = "held_quiet_hours"  # report key: rows put back until the recipient's morning
# rows a sender claims at once when every channel is a local journal: each claim re-reads its customers from
# the warehouse (warehouse.send_time, 5,000 ids a statement), so larger claims mean fewer round trips; on the
# 1M DuckDB campaign bench the send stage took the same time as with claims of 2,000 (docs/benchmark-history.md)
LOCAL_CLAIM_SIZE = 10_000


class Channel(Protocol):
    """What `send_due` needs of a channel adapter: a name and `send`."""

    name: str

    def send(self, message: OutgoingMessage) -> SendOutcome:
        """Send one message; provider refusals come back as outcomes, not exceptions."""


@dataclass
class DispatchReport:
    """Messages per outbox status after a dispatch pass, summed over every sender."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, status: str, n: int = 1) -> None:
        """Count `n` more messages that ended in `status`."""
        self.counts[status] += n

    def merge(self, counts: dict[str, int]) -> None:
        """Add another sender's counts (a helper's report, or a later pass of this one)."""
        for status, n in counts.items():
            self.add(status, int(n))

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for logs, Prefect results and the CLI)."""
        return dict(self.counts)


def _is_remote(channel: object) -> bool:
    """A provider (or anything paced like one): called from the sending threads, within the rate."""
    return getattr(channel, "rate_limited", True)


def _is_journal(channel: object) -> bool:
    """A channel that can say after a crash whether a message left (the local sink): reconciled exactly."""
    return hasattr(channel, "has_sent")


def _recorded_with_claim(channel: object) -> bool:
    """Sent inline and recorded with the claim: a local journal needs no start marks, it answers for itself."""
    return not _is_remote(channel) and _is_journal(channel)


def send_due(
    engine: Engine,
    channels: dict[str, Channel],
    *,
    run_id: int | None = None,
    campaign_id: str = "",
    now: dt.datetime | None = None,
    limits: SendLimits = SendLimits(),  # noqa: B008 (frozen)
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen)
    max_messages: int | None = None,
    claim_size: int = 200,
    stop_check: Callable[[list[dict]], dict[str, str]] | None = None,
    source: SourceTables | None,
    links: UnsubscribeLinks,
    channel: str | None = None,
) -> DispatchReport:
    """Send every due message (of one run, or all) until none is left.

    Rows are claimed `claim_size` at a time (committed as `sending` before any provider call), checked
    again (see the module docstring; `source` is where consent is read: the edge's tables as
    `send_time_source` checked them, None for a bare outbox), then sent concurrently within the per-channel
    rate, each row's start committed just before its call and its answer as it arrives. A crash therefore
    leaves at most one claim's rows in `sending`, of which only the calls in flight (`limits.concurrency`)
    had started; `reconcile` puts the others back in the queue. When every channel is a local journal
    (reconciled exactly, never `unknown`), claims are larger and recorded whole: fewer commits, same
    guarantee. The per-channel rates of `limits` (built from the settings by the caller, see
    SendLimits.from_settings) are kept by every sender together (SharedRateLimiter). `links` are the edge's
    unsubscribe links; `channel` limits this sender to that channel's messages (an SMS sender apart from the
    email ones).
    """
    if not any(_is_remote(channel) for channel in channels.values()):
        claim_size = max(claim_size, LOCAL_CLAIM_SIZE)
    report = DispatchReport()
    now = now or utcnow()
    token = outbox.sender_token()
    started = time.monotonic()  # `now` may be simulated: measure elapsed time, add it to `now`
    outbox.ACTIVE_TOKENS.add(token)
    try:
        sender = _Sender(engine, channels, campaign_id, now, limits, retry, stop_check, source, token, started, links)
        with ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix="winback-send") as pool:
            sender.pool = pool
            handled = 0
            while max_messages is None or handled < max_messages:
                with engine.begin() as conn:
                    rows = outbox.claim_due(conn, now, claim_size, token, run_id, channel)
                if not rows:  # nothing due, or (PostgreSQL) every due row is being claimed by another sender
                    break
                sender.send_claim(rows, report)
                handled += len(rows)
        return report
    finally:
        outbox.ACTIVE_TOKENS.discard(token)


@dataclass
class _Sender:
    """One `send_due`'s settings and sending threads; `send_claim` sends one claim."""

    engine: Engine
    channels: dict[str, Channel]
    campaign_id: str
    now: dt.datetime
    limits: SendLimits
    retry: RetryPolicy
    stop_check: Callable[[list[dict]], dict[str, str]] | None
    source: SourceTables | None
    token: str
    started: float
    links: UnsubscribeLinks
    pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        limits = self.limits
        self.buckets = {name: SharedRateLimiter(self.engine, name, limits.rate(name)) for name in ("email", "sms")}

    def clock(self) -> dt.datetime:
        """The sender's time now: `now` plus the real time elapsed (Retry-After counts from here)."""
        return self.now + dt.timedelta(seconds=time.monotonic() - self.started)

    def send_claim(self, rows: list[dict], report: DispatchReport) -> None:
        try:
            blocked = checked_at_send_time(self.engine, self.source, rows, self.stop_check)
        except Exception:
            give_back(self.engine, rows, self.token)
            raise
        quiet = QuietHoursCheck(self.clock())
        held: dict[str, dt.datetime] = {}
        ready: list[Prepared] = []
        done: list[tuple[Prepared, SendOutcome]] = []
        for row in rows:
            reason = blocked.get(row["id"])
            if reason is not None:
                done.append((Prepared(row), Skipped(reason)))
                continue
            until = quiet.held_until(row["context"])
            if until is not None:  # night where the recipient is: back to the queue until their morning
                held[row["id"]] = until
                continue
            prepared = prepare(row, self.campaign_id, links=self.links)
            if prepared.outcome is not None:
                done.append((prepared, prepared.outcome))
            else:
                ready.append(prepared)

        if held:
            report.add(HELD, len(held))
        self._record(done, held, report)  # before any call: a crash mid-send must not leave them `sending`
        # journaled inline (the local sink): sent at once, recorded together; its journal answers after a crash
        inline = [p for p in ready if _recorded_with_claim(self._channel(p))]
        self._record(self._send_inline(inline), {}, report)
        calls = [p for p in ready if not _recorded_with_claim(self._channel(p))]
        if calls:
            self._call(calls, report)

    def _record(
        self, done: list[tuple[Prepared, SendOutcome]], held: dict[str, dt.datetime], report: DispatchReport
    ) -> None:
        """Commit settled rows' outcomes and put held rows back, in one transaction (none when there is nothing)."""
        if not done and not held:
            return
        with self.engine.begin() as conn:
            outbox.release(conn, held, self.token)
            changes = [outcome_change(conn, item, outcome, self.retry, self.clock()) for item, outcome in done]
            outbox.apply_changes(conn, changes)
        for change in changes:
            report.add(change["_kind"])

    def _send_inline(self, inline: list[Prepared]) -> list[tuple[Prepared, SendOutcome]]:
        """Send to the local journals, each channel's messages at once where it can (`send_many`)."""
        by_channel: dict[int, tuple[Channel, list[Prepared]]] = {}
        for item in inline:
            channel = self._channel(item)
            by_channel.setdefault(id(channel), (channel, []))[1].append(item)
        done: list[tuple[Prepared, SendOutcome]] = []
        for channel, items in by_channel.values():
            messages = [item.message for item in items]
            # looked up on the class: a wrapper that forwards other attributes must still see each send
            if getattr(type(channel), "send_many", None) is not None:
                outcomes = channel.send_many(messages)  # type: ignore[attr-defined]
            else:
                outcomes = [channel.send(message) for message in messages]  # type: ignore[arg-type]
            done += zip(items, outcomes, strict=True)
        return done

    def _channel(self, item: Prepared) -> Channel:
        return self.channels[item.row["channel"]]

    def _call(self, calls: list[Prepared], report: DispatchReport) -> None:
        """Each row started, called and recorded (`ClaimRecorder`); providers from `concurrency` threads."""
        recorder = ClaimRecorder(self.engine, self.token, self.retry, self.clock)
        crashed: list[tuple[Prepared, Exception]] = []
        try:
            remote = deque(p for p in calls if _is_remote(self._channel(p)))
            local = deque(p for p in calls if not _is_remote(self._channel(p)))
            crashed += self._call_each(local, recorder)  # a local channel is not worth a thread hop
            lock = threading.Lock()
            assert self.pool is not None
            threads = min(self.limits.concurrency, len(remote))
            futures = [self.pool.submit(self._call_each, remote, recorder, lock) for _ in range(threads)]
            wait(futures)  # every thread done before the recorder stops: none may wait on it for ever
            for future in futures:
                crashed += future.result()
        finally:
            recorder.close()
            report.merge(recorder.kinds)
        if crashed:  # the others' outcomes are committed; these stay `sending` (started) for reconcile
            raise SendCrashed(crashed)

    def _call_each(
        self, pending: deque[Prepared], recorder: ClaimRecorder, lock: threading.Lock | None = None
    ) -> list[tuple[Prepared, Exception]]:
        """Take rows off `pending` one at a time until none is left: rate, start, call, record."""
        crashed = []
        while True:
            with lock or contextlib.nullcontext():
                if not pending:
                    return crashed
                item = pending.popleft()
            assert item.message is not None
            channel = self._channel(item)
            if _is_remote(channel):
                self.buckets[item.message.channel].acquire()
            lookup_text = item.message.text if hasattr(channel, "find_sent") else None
            if not recorder.start(item, lookup_text):
                continue  # no longer ours (reconciled away as a dead claim): never call
            try:
                outcome = channel.send(item.message)
            except Exception as exc:  # an adapter's bug, not a provider's answer: sent or not is unknown
                crashed.append((item, exc))
                continue
            recorder.record(item, outcome)


class SendCrashed(DeliveryError):
    """A channel adapter raised instead of answering: the sender stops, its other outcomes kept.

    Whether those messages reached the provider is unknown, so their rows stay `sending` (started);
    `reconcile` settles them (the sink's journal exactly, a provider's as `unknown`), exactly as after a crash.
    """

    def __init__(self, crashed: list[tuple[Prepared, Exception]]) -> None:
        first = crashed[0][1]
        ids = ", ".join(item.row["id"] for item, _ in crashed[:5]) + (", …" if len(crashed) > 5 else "")
        super().__init__(
            f"{len(crashed)} message(s) left `sending` for reconcile ({ids}): "
            f"{type(first).__name__}: {redact_text(str(first))}"
        )
        self.__cause__ = first
