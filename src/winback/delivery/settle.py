"""Settle `unknown` rows where a provider can answer; list the rest for an operator. Never resend silently.

An `unknown` row's call started but its answer was lost (a crash, an adapter that raised). What settles it:
- provider events (the signed SendGrid Event Webhook, Twilio status callbacks) that name it: `sent`
  (`delivery.events`, as they arrive, and again on reconcile);
- for a channel that can look a message up (`find_sent`: Twilio's Messages list), the lookup: found, the row
  is `sent` with the provider's id; listed nowhere once the provider's visibility delay has passed (Twilio
  lists a message by send date, which it sets only when the message leaves its queue: up to the validity
  period, 36,000 s by default, after the call), it never left and is re-queued, once: a row that comes back
  `unknown` after that re-queue is left to an operator. Other messages to the same number that do not match
  (a body Twilio may have rewritten) make absence unprovable: left to an operator too;
- everything else (SendGrid has no lookup by our id) waits for events; rows still `unknown` after the
  operator wait (24 h by default) are counted and logged for an operator, who lists them with
  `winback outbox unknown` and decides with `winback outbox resend --unknown --older-than … --yes`.
Every move is written to the outbox history with its reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from winback.messages.contact_data import locale_region, normalise_phone
from winback.messages.redact import mask_phone, redact_text
from winback.settings import Settings
from winback.warehouse import outbox_unknown
from winback.warehouse.timeutil import utcnow

log = logging.getLogger(__name__)

LOOKUP_ACTOR = "twilio lookup"


@dataclass(frozen=True)
class UnknownPolicy:
    """How long to wait before deciding about an `unknown` row, in seconds.

    `lookup_visibility_seconds` (WINBACK_TWILIO_VISIBILITY_DELAY, default 39,600 = Twilio's default validity
    period of 10 h, plus an hour): how long after its call a message may still be missing from the Messages
    list although it will leave; only after it does absence mean it never left.
    `operator_wait_seconds` (WINBACK_UNKNOWN_OPERATOR_WAIT, default 86,400 = 24 h): how long an `unknown` row
    waits for a provider event before it is listed for an operator.
    """

    lookup_visibility_seconds: float = 39_600.0
    operator_wait_seconds: float = 86_400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> UnknownPolicy:
        """The waits the settings configure."""
        return cls(
            lookup_visibility_seconds=settings.twilio_visibility_delay,
            operator_wait_seconds=settings.unknown_operator_wait,
        )


def settle_unknown(
    engine: Engine,
    channels: Mapping[str, object] | object | None,
    run_id: int | None = None,
    *,
    now: dt.datetime | None = None,
    policy: UnknownPolicy,
) -> dict[str, int]:
    """Look up the `unknown` rows of channels that can answer, and count those left for an operator.

    `channels` is a sender's channel map ({"email": ..., "sms": ...}) or one channel for all; `now` is the
    wall clock (the provider's time, not a simulated one). Returns counts: `sent_by_lookup`,
    `requeued_by_lookup`, `lookup_undecided` (not found yet, or found nothing but other messages, or no text
    to match), `lookup_failed` (the provider could not be asked), `unknown_for_operator`.
    """
    now = now or utcnow()
    counts: Counter[str] = Counter()
    for name in ("email", "sms"):
        channel = channels.get(name) if isinstance(channels, Mapping) else channels
        if hasattr(channel, "find_sent"):
            counts.update(_look_up(engine, channel, name, run_id, now, policy))
    waited = now - dt.timedelta(seconds=policy.operator_wait_seconds)
    with engine.connect() as conn:
        waiting = outbox_unknown.unknown_rows(conn, run_id, since_before=waited)
    if waiting:
        counts["unknown_for_operator"] = len(waiting)
        log.warning(
            "%d message(s) unknown for over %.0f h with nothing to settle them: list them with `winback outbox "
            "unknown`; re-queue with `winback outbox resend --unknown --older-than ... --yes`",
            len(waiting),
            policy.operator_wait_seconds / 3600,
        )
    return {k: v for k, v in counts.items() if v}


def _look_up(
    engine: Engine, channel: Any, name: str, run_id: int | None, now: dt.datetime, policy: UnknownPolicy
) -> Counter[str]:
    counts: Counter[str] = Counter()
    with engine.connect() as conn:
        rows = outbox_unknown.unknown_rows(conn, run_id, channel=name)
        requeued = outbox_unknown.requeued_before(conn, [r["id"] for r in rows], LOOKUP_ACTOR)
    visible_after = dt.timedelta(seconds=policy.lookup_visibility_seconds)
    for row in rows:
        if not row["body_text"]:  # started before texts were recorded: nothing to match on
            counts["lookup_undecided"] += 1
            continue
        to = _address(row)
        try:
            found = channel.find_sent(to, row["body_text"], row["since"])
        except Exception as exc:  # the provider cannot be asked now: next reconcile asks again
            log.warning("lookup of unknown message %s failed: %s", row["id"], redact_text(str(exc)))
            counts["lookup_failed"] += 1
            continue
        with engine.begin() as conn:
            if found.sid:
                reason = f"{LOOKUP_ACTOR}: listed as {found.sid}"
                outbox_unknown.settle_unknown_as_sent(conn, row["id"], "twilio", found.sid, now, LOOKUP_ACTOR, reason)
                counts["sent_by_lookup"] += 1
            elif found.others == 0 and now - row["since"] >= visible_after and row["id"] not in requeued:
                age = (now - row["since"]).total_seconds()
                reason = (
                    f"{LOOKUP_ACTOR}: not listed {age:.0f} s after its call (visibility delay "
                    f"{visible_after.total_seconds():.0f} s): it never left; re-queued once"
                )
                outbox_unknown.requeue_unknown(conn, [row["id"]], now, LOOKUP_ACTOR, reason)
                log.warning("unknown message %s to %s re-queued: %s", row["id"], mask_phone(to), reason)
                counts["requeued_by_lookup"] += 1
            else:
                counts["lookup_undecided"] += 1
    return counts


def _address(row: dict[str, Any]) -> str:
    """The number as the dispatcher sent to it (normalised with the row's locale), else as stored."""
    context = row["context"] if isinstance(row["context"], dict) else {}
    e164, _ = normalise_phone(row["to_address"], locale_region(context.get("locale")))
    return e164 or row["to_address"].strip()
