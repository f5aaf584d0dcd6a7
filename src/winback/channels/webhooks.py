"""Provider webhook payloads → normalised `WebhookEvent`s (pure parsing: no database, no web framework).

What is kept from each payload is what winback needs to match and explain an event, minus contact data:
SendGrid's `email` is masked and every other text in the event (a bounce `reason` quoting the address, a
click `url` carrying it) goes through `redact_text`; Twilio's To/From/Body are dropped (the outbox row already
knows the address).

- SendGrid Event Webhook: a JSON array of events. Our custom args (`winback_message_id`, `campaign_id`,
  `customer_id`) come back as top-level keys of each event. event_key = `sendgrid:{sg_event_id}`.
  A `bounce` whose `type` is `blocked` is a soft bounce and is normalised to event_type `blocked`;
  `type=bounce` (or none) stays `bounce`, the hard bounce. Events without any winback id (mail sent by
  something else on the same SendGrid account) are left out.
- Twilio status callbacks: form fields MessageSid, MessageStatus, ErrorCode...; the outbox id rides on the
  callback URL as `winback_message_id` (`CALLBACK_ID_PARAM`, added by the Twilio channel), which is what
  matches a callback to a row left `unknown`, whose MessageSid was never recorded.
  event_key = `twilio:{MessageSid}:{MessageStatus}`.
- Twilio inbound SMS: `sms_keyword(body)` classifies a reply as stop / start / help (Twilio's own keyword
  lists, whole body, trimmed, case-insensitive) or None.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from winback.errors import DataError
from winback.messages.redact import mask_email, redact_text

SENDGRID_TYPES = (
    "processed", "delivered", "open", "click", "bounce", "blocked", "dropped", "deferred",
    "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe",
)  # fmt: skip
TWILIO_STATUSES = (
    "accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read",
    "canceled", "receiving", "received",
)  # fmt: skip
TWILIO_OPTED_OUT_ERROR = "21610"

STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

MAX_KEY = 128  # wb_message_events.event_key
MAX_TYPE = 24  # wb_message_events.event_type
MAX_ID = 40  # wb_outbox.id
CALLBACK_ID_PARAM = "winback_message_id"  # the outbox id, in the Twilio StatusCallback URL's query
_DROPPED_TWILIO_FIELDS = frozenset({"To", "From", "Body"})
# Identifiers SendGrid or winback made: no contact data in them, and redaction would garble them (a numeric
# customer id reads as a phone number).
_SENDGRID_ID_FIELDS = frozenset({"sg_event_id", "sg_message_id", "winback_message_id", "campaign_id", "customer_id"})


class WebhookPayloadError(DataError):
    """The (authentic) payload is not shaped as the provider documents it."""


@dataclass(frozen=True)
class WebhookEvent:
    """One provider event, normalised. `outbox_id`/`customer_id` are what the payload claims (may be None)."""

    event_key: str
    outbox_id: str | None
    customer_id: str | None
    channel: str  # email | sms
    event_type: str
    occurred_at: dt.datetime
    payload: dict[str, Any] = field(default_factory=dict)
    provider: str = ""
    provider_message_id: str | None = None


def _key(text: str) -> str:
    """Event keys longer than the column are replaced by a stable hash (never truncated into collisions)."""
    if len(text) <= MAX_KEY:
        return text
    prefix = text.split(":", 1)[0]
    return f"{prefix}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _clean_id(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _from_unix(value: Any, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return default


# ---------------------------------------------------------------- SendGrid


def parse_sendgrid_events(body: bytes, *, received_at: dt.datetime) -> list[WebhookEvent]:
    """The winback events in a SendGrid Event Webhook body; WebhookPayloadError if it is not a JSON array."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError("SendGrid event body is not JSON") from exc
    if not isinstance(items, list):
        raise WebhookPayloadError("SendGrid event body is not a JSON array")
    events = []
    for item in items:
        if isinstance(item, dict):
            event = sendgrid_event(item, received_at=received_at)
            if event is not None:
                events.append(event)
    return events


def sendgrid_event(item: Mapping[str, Any], *, received_at: dt.datetime) -> WebhookEvent | None:
    """One SendGrid event dict → WebhookEvent; None when it carries no winback id or no event name."""
    outbox_id = _clean_id(item.get("winback_message_id"), MAX_ID)
    customer_id = _clean_id(item.get("customer_id"), 64)
    name = str(item.get("event") or "").strip().lower()
    if not name or not (outbox_id or customer_id):
        return None
    if name == "bounce" and str(item.get("type") or "").strip().lower() == "blocked":
        name = "blocked"
    payload = sendgrid_payload(item)
    sg_event_id = _clean_id(item.get("sg_event_id"), 1000)
    if sg_event_id:
        key = _key(f"sendgrid:{sg_event_id}")
    else:  # not expected from SendGrid; a content hash still makes a redelivery a no-op
        digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
        key = f"sendgrid:sha256:{digest}"
    sg_message_id = _clean_id(item.get("sg_message_id"), 1000)
    return WebhookEvent(
        event_key=key,
        outbox_id=outbox_id,
        customer_id=customer_id,
        channel="email",
        event_type=name[:MAX_TYPE],
        occurred_at=_from_unix(item.get("timestamp"), received_at),
        payload=payload,
        provider="sendgrid",
        # the Mail Send 202's X-Message-Id is the part of sg_message_id before the first dot
        provider_message_id=sg_message_id.split(".", 1)[0][:128] if sg_message_id else None,
    )


def sendgrid_payload(item: Mapping[str, Any]) -> dict[str, Any]:
    """The event as stored: `email` masked, every other string (nested ones too) redacted, ids kept as sent.

    Event rows outlive the customer's consent, and SendGrid quotes the address in more than `email`:
    a bounce `reason` ("550 5.1.1 <jane@example.com>...") or a tracked link's `url`.
    """
    payload: dict[str, Any] = {}
    for name, value in item.items():
        if name == "email" and isinstance(value, str):
            payload[name] = mask_email(value)
        elif name in _SENDGRID_ID_FIELDS and isinstance(value, str):
            payload[name] = value
        else:
            payload[name] = _redacted(value)
    return payload


def _redacted(value: Any) -> Any:
    """`value` with `redact_text` applied to every string in it, through nested objects and arrays."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {name: _redacted(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_redacted(inner) for inner in value]
    return value


# ---------------------------------------------------------------- Twilio


def parse_twilio_status(form: Mapping[str, str], query: Mapping[str, str], *, received_at: dt.datetime) -> WebhookEvent:
    """A Twilio message status callback → WebhookEvent; WebhookPayloadError without MessageSid/MessageStatus.

    `query` is the callback URL's (signed with it): its `CALLBACK_ID_PARAM` becomes `outbox_id`, which
    `warehouse.events` matches before the MessageSid, so a row left `unknown` (no sid recorded) is settled
    and gets the sid.
    """
    sid = _clean_id(form.get("MessageSid") or form.get("SmsSid"), 128)
    status = str(form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise WebhookPayloadError("Twilio status callback without MessageSid or MessageStatus")
    payload = {k: v for k, v in form.items() if k not in _DROPPED_TWILIO_FIELDS}
    return WebhookEvent(
        event_key=_key(f"twilio:{sid}:{status}"),
        outbox_id=_clean_id(query.get(CALLBACK_ID_PARAM), MAX_ID),
        customer_id=None,
        channel="sms",
        event_type=status[:MAX_TYPE],
        occurred_at=received_at,
        payload=payload,
        provider="twilio",
        provider_message_id=sid,
    )


def twilio_error_code(event: WebhookEvent) -> str | None:
    """Twilio's `ErrorCode` on a status event (21610 means the recipient opted out), or None."""
    code = str(event.payload.get("ErrorCode") or "").strip()
    return code or None


def sms_keyword(body: str | None) -> str | None:
    """'stop', 'start', 'help' or None: the whole body, trimmed, case-insensitive (as Twilio matches them)."""
    word = (body or "").strip().upper()
    if word in STOP_KEYWORDS:
        return "stop"
    if word in START_KEYWORDS:
        return "start"
    if word in HELP_KEYWORDS:
        return "help"
    return None
