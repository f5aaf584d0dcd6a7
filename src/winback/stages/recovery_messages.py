"""A recovery journey's messages: the steps a failure earns, each with its context, time and code.

`plan_messages` builds the outbox rows of the steps not queued yet (the apology, then the follow-ups),
each at the recipient's next allowed hour; `queue_messages` stores them with any expiry moved for a later
step, in one transaction on the caller's engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine

from winback.config import CampaignConfig
from winback.messages.compose import check_templates
from winback.messages.contact_data import recipient_time_zone
from winback.messages.journey import JourneyRules, plan_steps
from winback.messages.quiet_hours import next_allowed, send_window_context
from winback.offers.issue import expiry_for, extend_expiry
from winback.warehouse import outbox
from winback.warehouse.timeutil import utc

log = logging.getLogger(__name__)


def plan_messages(
    event: dict[str, Any],
    journey: tuple[int, str, str],
    person: dict[str, Any],
    last_order_at: dt.datetime | None,
    offer: dict[str, Any] | None,
    progress: tuple[set[str], bool],
    now: dt.datetime,
    config: CampaignConfig,
    rules: JourneyRules,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The outbox rows of the journey's steps still to queue, and the offer as the last of them states it.

    `journey` is (run id, ticket key, channel); `progress` the steps queued so far and whether the code was
    already sent or queued. A step carrying the code moves its expiry so the customer gets the full validity
    (`valid_from`); the offer returned then carries `previous_expiry` (stored by `queue_messages`).
    """
    run_id, key, channel = journey
    steps_so_far, offer_given = progress
    cid = event["customer_id"]
    steps = plan_steps(
        event["type"],
        int(event.get("severity") or 1),
        now,
        has_offer=offer is not None,
        steps_so_far=steps_so_far,
        offer_given=offer_given,
        rules=rules,
    )
    base = {
        "first_name": person.get("first_name"),
        "locale": person.get("locale"),
        "failure_category": event.get("category"),
        "order_id": event.get("order_id") or key,
        "occurred_at": event.get("occurred_at"),
        "unresolved": event["type"] != "ticket.closed",
        "description": event.get("description"),
        "last_order_at": last_order_at.isoformat() if last_order_at is not None else None,
    }
    # the same zone the campaign uses (a valid profile zone, else the phone's), kept on each row so the
    # sender re-checks quiet hours when a later step finally goes
    zone = recipient_time_zone(person.get("time_zone"), person.get("phone"), person.get("locale"))
    quiet = config.contact.quiet_start_hour, config.contact.quiet_end_hour
    address = person.get("email") if channel == "email" else person.get("phone")
    rows = []
    for step in steps:
        ctx = dict(base, unresolved=base["unresolved"] and step.step == "apology")
        ctx.update(send_window_context(zone, *quiet))
        at = next_allowed(step.at, zone, config.contact.quiet_end_hour, config.contact.quiet_start_hour)
        if step.with_offer and offer:
            offer = valid_from(offer, at, config.offer_expiry_days)
            ctx.update(offer_fields(offer))
        rows.append(
            {
                "id": outbox.message_id(run_id, cid, step.step),
                "run_id": run_id,
                "customer_id": cid,
                "step": step.step,
                "channel": channel,
                "template": step.step,
                "to_address": address or "",
                "context": ctx,
                "status": "queued",
                "attempts": 0,
                "not_before": at,
                "created_at": now,
            }
        )
    check_templates(rows)
    return rows, offer


def queue_messages(
    state: Engine, run_id: int, customer_id: str, rows: list[dict[str, Any]], offer: dict[str, Any] | None
) -> dict[str, Any]:
    """Store the rows, and any expiry they state that was moved, in one transaction → `queued` (and the new date)."""
    result: dict[str, Any] = {}
    with state.begin() as conn:
        if offer and record_extension(conn, run_id, customer_id, offer):
            result["offer_expiry_extended_to"] = offer["expires_at"].isoformat()
        result["queued"] = outbox.enqueue(conn, rows)
    return result


def valid_from(offer: dict[str, Any], sent_at: dt.datetime, days: int) -> dict[str, Any]:
    """`offer`, its expiry moved so a message sent at `sent_at` gives the customer the full `days` days.

    The code was issued when the journey first decided; a later step (the "resolved" message weeks on)
    carrying it must not print a date already gone. Never shortened.
    """
    wanted = expiry_for(sent_at, days)
    current = utc(offer["expires_at"].to_pydatetime())
    if current >= wanted:
        return offer
    return dict(offer, expires_at=pd.Timestamp(wanted), previous_expiry=current)


def offer_fields(offer: dict[str, Any]) -> dict[str, Any]:
    """The merge fields of a message carrying the code; `offer_amount` is the money it states."""
    return {
        "code": offer["code"],
        "offer_kind": offer["offer_kind"],
        "offer_value": float(offer["offer_value"]),
        "offer_amount": float(offer["offer_amount"]),
        "currency": offer["currency"],
        "expires_at": offer["expires_at"].isoformat(),
    }


def record_extension(conn: Connection, run_id: int, customer_id: str, offer: dict[str, Any]) -> bool:
    """Store an expiry `valid_from` moved; True if it was moved here.

    Called in the transaction that queues the messages stating the new date, so neither is kept without
    the other; logged, as the code's validity changed after it was issued (wb_offers keeps issued_at).
    """
    if "previous_expiry" not in offer:
        return False
    extended = extend_expiry(conn, run_id, customer_id, offer["expires_at"].to_pydatetime())
    if extended:
        log.info(
            "recovery run %s, customer %s: code expiry extended from %s to %s for a later message",
            run_id,
            customer_id,
            offer["previous_expiry"].isoformat(),
            offer["expires_at"].isoformat(),
        )
    return extended
