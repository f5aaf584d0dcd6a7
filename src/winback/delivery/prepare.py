"""A claimed row made ready to send (address checked, message rendered), and an answer made an outbox change."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Connection

from winback.channels.errors import OPTED_OUT_REASON
from winback.channels.outcomes import Failed, OutgoingMessage, SendOutcome, Sent, Skipped
from winback.delivery.limits import RetryPolicy
from winback.messages.contact_data import locale_region, normalise_email, normalise_phone
from winback.messages.quiet_hours import next_allowed, send_window
from winback.messages.redact import redact_text
from winback.messages.render import Brand, RenderError, build_context, render
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.warehouse.suppressions import suppress

log = logging.getLogger(__name__)


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
    *,
    links: UnsubscribeLinks,
) -> Prepared:
    """Check the address and render the message; bad data becomes an outcome, never an exception."""
    channel = row["channel"]
    if channel == "email":
        address, problem = normalise_email(row["to_address"])
    else:
        address, problem = normalise_phone(row["to_address"], locale_region(row["context"].get("locale")))
    if problem:
        return Prepared(row, outcome=Skipped(problem))
    link = links.url(row["customer_id"], channel)
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


def outcome_change(
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
