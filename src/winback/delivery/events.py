"""Provider events into wb_message_events, once each, and their effects on the outbox and the opt-out list.

Effects (applied in the caller's transaction, so a batch lands whole or not at all):
- every event is recorded once, keyed by its `event_key` (INSERT ... ON CONFLICT DO NOTHING, so two
  concurrent redeliveries cannot both count as new); a redelivered batch changes nothing;
- an outbox row in `unknown` (a crash between claim and the provider's answer), or back in `queued` or in
  `failed` after an attempt whose answer was lost (a timeout), that the provider reports on, whatever the
  event, moves to `sent`: the provider had it, so it must never be sent again. This is applied for
  redelivered events too (it is idempotent), and `reconcile_unknown_from_events` does the same for events
  that arrived while the row was still `sending`;
- any other outbox status is left as it was at send: delivered/open/click/bounce are facts about the
  message, recorded as events, not a new send status;
- hard bounces, spam reports, unsubscribes and group unsubscribes suppress the customer's channel; a
  Twilio status with ErrorCode 21610 (the recipient replied STOP) suppresses SMS. Only new events act.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from winback.channels.webhooks import TWILIO_OPTED_OUT_ERROR, WebhookEvent, twilio_error_code
from winback.messages.contact_data import locale_region, normalise_phone
from winback.warehouse.insert_once import insert_if_absent
from winback.warehouse.models import MessageEvent, OutboxMessage
from winback.warehouse.suppressions import lift_suppression, suppress, suppress_address

EMAIL_SUPPRESSING = {
    "bounce": "bounce",  # hard bounce (a `blocked` soft bounce is only recorded)
    "spamreport": "spamreport",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
SOURCES = {"sendgrid": "sendgrid event webhook", "twilio": "twilio status callback"}
SMS_REPLY_SOURCE = "sms reply"
PHONE_SCAN_LIMIT = 20_000


@dataclass
class RecordResult:
    """What one webhook delivery did (returned to the provider as JSON, and logged)."""

    received: int = 0
    new: int = 0
    duplicate: int = 0
    unmatched: int = 0  # no outbox row found for the event (still recorded)
    reconciled: int = 0  # unknown -> sent
    suppressed: int = 0  # new suppressions

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict: the webhook's JSON answer."""
        return asdict(self)


def _outbox_row(conn: Connection, event: WebhookEvent) -> Any:
    cols = (OutboxMessage.id, OutboxMessage.customer_id, OutboxMessage.channel, OutboxMessage.status)
    if event.outbox_id:
        row = conn.execute(select(*cols).where(OutboxMessage.id == event.outbox_id)).first()
        if row is not None:
            return row
    if event.provider == "twilio" and event.provider_message_id:
        return conn.execute(
            select(*cols)
            .where(
                OutboxMessage.provider_message_id == event.provider_message_id,
                OutboxMessage.provider == "twilio",
            )
            .limit(1)
        ).first()
    return None


def suppression_reason(event: WebhookEvent) -> str | None:
    """Why this event opts the customer out of its channel, or None."""
    if event.provider == "sendgrid":
        return EMAIL_SUPPRESSING.get(event.event_type)
    if event.provider == "twilio" and twilio_error_code(event) == TWILIO_OPTED_OUT_ERROR:
        return "stop"
    return None


# the statuses a row may be in although its message left (see `_left_but_not_marked`)
LEFT_STATUSES = ("unknown", "queued", "failed")


def _left_but_not_marked() -> Any:
    """Rows a provider event proves were sent though the outbox does not say so.

    `unknown` after a crash, or `queued`/`failed` after an attempt whose answer was lost (a timeout):
    resending those would send the same message twice.
    """
    return or_(
        OutboxMessage.status == "unknown",
        and_(OutboxMessage.status.in_(LEFT_STATUSES[1:]), OutboxMessage.attempts > 0),
    )


def _reconcile(conn: Connection, outbox_id: str, event: WebhookEvent) -> bool:
    """-> sent (see `_left_but_not_marked`), filling in provider, provider id and sent time left empty."""
    result = conn.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, _left_but_not_marked())
        .values(
            status="sent",
            sent_at=func.coalesce(OutboxMessage.sent_at, event.occurred_at),
            provider=func.coalesce(OutboxMessage.provider, event.provider or None),
            provider_message_id=func.coalesce(OutboxMessage.provider_message_id, event.provider_message_id),
        )
    )
    return result.rowcount > 0


def record_events(conn: Connection, events: Iterable[WebhookEvent]) -> RecordResult:
    """Record provider events once each and apply their effects (see the module docstring)."""
    result = RecordResult()
    for event in events:
        result.received += 1
        row = _outbox_row(conn, event)
        if row is None:
            result.unmatched += 1
        outbox_id = row.id if row is not None else event.outbox_id
        values = {
            "event_key": event.event_key,
            "outbox_id": outbox_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at,
            "payload": event.payload,
        }
        new = insert_if_absent(conn, MessageEvent.__table__, values, "event_key")
        result.new += new
        result.duplicate += not new
        if row is not None and row.status in LEFT_STATUSES and _reconcile(conn, row.id, event):
            result.reconciled += 1
        reason = suppression_reason(event)
        customer = row.customer_id if row is not None else event.customer_id
        channel = row.channel if row is not None else event.channel
        if new and reason and customer:
            source = SOURCES.get(event.provider, event.provider or "webhook")
            if channel == "email":  # the address bounced or opted out, whoever else holds it
                result.suppressed += suppress_address(conn, customer, channel, reason, source, event.occurred_at)
            else:
                result.suppressed += suppress(conn, customer, channel, reason, source, event.occurred_at)
    return result


def reconcile_unknown_from_events(conn: Connection, now: dt.datetime) -> int:
    """Move every row a provider event proves was sent (`_left_but_not_marked`) to `sent`; returns how many.

    For events that arrived while the row was still `sending` (the crash window, or an attempt that timed
    out), before it was marked `unknown` or put back in the queue.
    """
    has_event = select(MessageEvent.id).where(MessageEvent.outbox_id == OutboxMessage.id).exists()
    result = conn.execute(
        update(OutboxMessage)
        .where(_left_but_not_marked(), has_event)
        .values(status="sent", sent_at=func.coalesce(OutboxMessage.sent_at, now))
    )
    return result.rowcount


# ---------------------------------------------------------------- inbound SMS


def _region(context: Any) -> str | None:
    """The region the dispatcher read the number with (`en_gb` as `en_GB`): the same number it texted."""
    return locale_region(context.get("locale") if isinstance(context, dict) else None)


def sms_rows_for_phone(conn: Connection, number: str, *, limit: int = PHONE_SCAN_LIMIT) -> list[tuple[str, str]]:
    """(outbox id, customer id) of SMS rows sent to this number, newest first, one per customer.

    `to_address` holds the number as the CRM had it, so rows are compared after normalising each with its
    own locale's region (as the dispatcher did when sending). Only rows whose address ends in the same two
    digits are fetched, newest first, at most `limit` of them.
    """
    e164, _ = normalise_phone(number)
    target = e164 or number.strip()
    digits = "".join(c for c in target if c.isdigit())
    if len(digits) < 2:
        return []
    stmt = (
        select(OutboxMessage.id, OutboxMessage.customer_id, OutboxMessage.to_address, OutboxMessage.context)
        .where(OutboxMessage.channel == "sms", func.rtrim(OutboxMessage.to_address).like(f"%{digits[-2:]}"))
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
    )
    found: dict[str, str] = {}
    for oid, customer_id, address, context in conn.execute(stmt):
        if customer_id in found:
            continue
        same = address.strip() == target
        if not same and e164:
            same = normalise_phone(address, _region(context))[0] == e164
        if same:
            found[customer_id] = oid
    return [(oid, cid) for cid, oid in found.items()]


@dataclass
class SmsReplyResult:
    """What an inbound STOP or START did, for the TwiML answer and the log."""

    known: bool  # the number matched at least one SMS we sent
    new: bool  # first time this reply (MessageSid) was seen
    customers: list[str] = field(default_factory=list)  # whose SMS suppression changed (or would have)


def record_sms_reply(conn: Connection, number: str, keyword: str, message_sid: str, at: dt.datetime) -> SmsReplyResult:
    """Apply an inbound STOP or START: once per MessageSid, recorded in wb_message_events.

    STOP suppresses SMS for every customer we texted at that number (the phone's holder opted out);
    START lifts the suppression of the latest such customer only (opting back in is kept narrow).
    """
    if keyword not in ("stop", "start"):
        raise ValueError(f"not an opt-out/opt-in keyword: {keyword!r}")
    rows = sms_rows_for_phone(conn, number)
    if not rows:
        return SmsReplyResult(known=False, new=False)
    latest_outbox, latest_customer = rows[0]
    values = {
        "event_key": f"twilio:inbound:{message_sid}"[:128],
        "outbox_id": latest_outbox,
        "event_type": f"sms_{keyword}",
        "occurred_at": at,
        "payload": {"MessageSid": message_sid, "keyword": keyword},
    }
    new = insert_if_absent(conn, MessageEvent.__table__, values, "event_key")
    if keyword == "stop":
        customers = [cid for _, cid in rows]
        if new:
            for cid in customers:
                suppress(conn, cid, "sms", "stop", SMS_REPLY_SOURCE, at)
    else:
        customers = [latest_customer]
        if new:
            lift_suppression(conn, latest_customer, "sms")
    return SmsReplyResult(known=True, new=new, customers=customers)
