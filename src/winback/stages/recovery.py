"""Service recovery for one CRM event: decide, compensate, and plan the journey's messages, in minutes.

The flow `flows/recover.py` wraps `recover()`. A journey is one run of the `crm-recovery` campaign per
ticket (the event's `ticket_id`, else its order, else its own id), so every later event about the same
ticket extends the same journey and redelivered events add nothing.

The holdout here keeps the compensation, never the apology: everyone is told sorry; a random share is
not offered compensation, which is what the lift of compensation is measured against.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from winback.config import CampaignConfig
from winback.delivery.dispatch import Channel, send_due
from winback.messages.channel_choice import choose_channels
from winback.messages.compose import check_templates
from winback.messages.contact_data import recipient_time_zone
from winback.messages.journey import JourneyRules, plan_steps
from winback.messages.quiet_hours import next_allowed, send_window_context
from winback.messages.redact import redact_text
from winback.offers.issue import expiry_for, extend_expiry, issue_offers, offers_for_run
from winback.offers.policy import CompensationPolicy
from winback.segments.decision import DECISION_COLUMNS, decide
from winback.segments.holdout import held_out
from winback.segments.scoring import score_with_rules
from winback.settings import Settings
from winback.stages import quality
from winback.warehouse import journeys, outbox, quarantine, queries, runs
from winback.warehouse.crm import CATEGORIES, starts_recovery
from winback.warehouse.db import error_line
from winback.warehouse.models import CampaignRun, CrmEvent, Decision, Offer
from winback.warehouse.quality import Findings, QualityRules
from winback.warehouse.quality_orders import order_amount as order_amount_of
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc

CAMPAIGN_ID = "crm-recovery"
log = logging.getLogger(__name__)


def recovery_config(settings: Settings | None = None) -> CampaignConfig:
    """Budget: compensation per calendar month (expected cost of the codes issued), WINBACK_RECOVERY_BUDGET."""
    budget = (settings or Settings()).recovery_budget
    return CampaignConfig(campaign_id=CAMPAIGN_ID, segments=["aggrieved"], holdout_share=0.1, budget=budget)


def budget_left(engine: Engine, config: CampaignConfig, when: dt.datetime) -> float:
    """The month's compensation budget minus the expected cost of the codes already issued this month."""
    month = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with engine.connect() as conn:
        spent = conn.execute(
            select(func.coalesce(func.sum(Offer.expected_cost), 0))
            .join(CampaignRun, CampaignRun.id == Offer.run_id)
            .where(CampaignRun.campaign_id == config.campaign_id, Offer.issued_at >= month)
        ).scalar_one()
    return max(0.0, config.budget - float(spent))


def load_event(engine: Engine, event_id: str) -> dict[str, Any]:
    """The payload of a received CRM event; a ValueError when it was never received."""
    with engine.connect() as conn:
        payload = conn.execute(select(CrmEvent.payload).where(CrmEvent.event_id == event_id)).scalar_one_or_none()
    if payload is None:
        raise ValueError(f"CRM event {event_id!r} was never received (nothing in wb_crm_events)")
    return dict(payload)


def _require_category(event_id: str, event: dict[str, Any]) -> None:
    """Fail before anything is recorded: every message of the journey names what went wrong.

    The intake refuses such events; one can still come from the ledger (recorded before that check, or
    written by hand). Without this the decision is recorded and only the template check fails, naming no event.
    """
    category = event.get("category")
    if category is None:
        raise ValueError(
            f"CRM event {event_id!r} ({event['type']}) has no category, so its messages could not say what went "
            f"wrong; expected one of {', '.join(CATEGORIES)}"
        )
    if category not in CATEGORIES:
        raise ValueError(
            f"CRM event {event_id!r} ({event['type']}) has an unknown category {category!r}; "
            f"expected one of {', '.join(CATEGORIES)}"
        )


def _one(cid: str) -> queries.IdRange:
    return (cid, cid)


def _decide(
    engine: Engine,
    src: SourceTables,
    event: dict[str, Any],
    as_of: dt.datetime,
    now: dt.datetime,
    config: CampaignConfig,
    policy: CompensationPolicy,
    findings: Findings,
) -> pd.DataFrame:
    """The customer as of the failure (`as_of`), against the budget of the month the code is issued (`now`).

    The customer's rows go through the data-quality gate as a campaign's do (bad ones left out, named in
    `findings`); a customer whose own record is quarantined is skipped with that reason.
    """
    cid = event["customer_id"]
    limits = config.data_quality
    rules = QualityRules(as_of, now, limits.max_plausible_amount, limits.max_bad_share)
    with src.reader(engine).connect() as conn:  # the warehouse: the customer's record and orders
        summary = queries.customer_summary(conn, src, as_of, _one(cid), rules=rules, findings=findings)
        reach = queries.reachability(conn, src, _one(cid), findings=findings)
        order_amount = None
        if event.get("order_id"):
            order_amount = order_amount_of(conn, src, event["order_id"], rules, findings)
    with engine.connect() as conn:  # winback's state: the customer's opt-outs
        suppressed = runs.suppressions(conn, [cid])
    if reach.empty and cid in findings.held_customers:
        problem = next(r[5] for r in findings.records if r[0] == src.customers.name and r[2] == cid)
        reason = f"skipped: their customer record is quarantined ({problem}): see `winback quality`"
        return quality.skip_decisions(pd.DataFrame({"customer_id": [cid], "reason": [reason]}), DECISION_COLUMNS)
    if reach.empty:
        raise ValueError(f"CRM event {event['event_id']!r}: customer {cid!r} is not in the customers table")
    rfm = queries.summary_to_rfm(summary, as_of)
    scored, _ = score_with_rules(rfm, config.economics)
    value = float(scored["customer_value"].iloc[0]) if len(scored) else 0.0
    spend = float(scored["mean_spend"].iloc[0]) if len(scored) else float(order_amount or 0.0)
    frame = choose_channels(reach, suppressed).assign(
        segment="aggrieved",
        failure_id=event["event_id"],
        failure_category=event.get("category"),
        severity=int(event.get("severity") or 1),
        unresolved=event["type"] not in ("ticket.closed",),
        order_amount=float(order_amount) if order_amount is not None else float("nan"),
        p_active=float(scored["p_active"].iloc[0]) if len(scored) else 0.5,
        customer_value=value,
        mean_spend=spend,
        days_since_contact=float("nan"),
        messages_30d=0,
        returned_since_failure=False,
    )
    with src.reader(engine).connect() as conn:  # the phone is read with phonenumbers before SMS is kept
        frame = quality.screen_sms_phones(conn, src, frame, suppressed, findings)
    left = budget_left(engine, config, now)
    decided = decide(frame, config.model_copy(update={"holdout_share": 0.0, "budget": left}), policy)
    with src.reader(engine).connect() as conn:
        decided = quality.contact_fallbacks(conn, src, decided, reach, findings)
    held = held_out(CAMPAIGN_ID, cid, config.holdout_share)
    if held and decided.loc[0, "action"] == "contact" and decided.loc[0, "offer_kind"] != "none":
        # the kind it would have had stays on the decision, so the holdout is compared with those given it;
        # nothing is given, so nothing is spent (no code is issued for the holdout arm)
        decided.loc[0, "arm"] = "holdout"
        decided.loc[0, ["offer_amount", "offer_cost"]] = 0.0
        decided.loc[0, "reason"] += "; compensation held out (random control): apology only"
    elif decided.loc[0, "action"] == "contact":
        decided.loc[0, "arm"] = "treatment"
    return decided


def _open_journey(
    engine: Engine, config: CampaignConfig, key: str, customer_id: str, started: dt.datetime
) -> tuple[int, dt.datetime, int | None]:
    """The ticket's journey run (created on first sight) → (run id, as_of, older steps superseded or None).

    A new journey supersedes the customer's older ones in the transaction that creates it: done in a second
    one, a crash in between left the older follow-ups queued for good, as the retry finds the run already made.
    """
    with Session(engine) as session, session.begin():
        runs.ensure_campaign(session, CAMPAIGN_ID, "recovery", config.model_dump(mode="json"))
        run, created = journeys.journey_run(session, CAMPAIGN_ID, key, started)
        superseded = None
        if created:
            superseded = journeys.supersede_other_journeys(session.connection(), CAMPAIGN_ID, customer_id, run.id)
        return run.id, utc(run.as_of), superseded


def recover(
    engine: Engine,
    src: SourceTables,
    event_id: str,
    channels: dict[str, Channel],
    now: dt.datetime,
    *,
    config: CampaignConfig | None = None,
    policy: CompensationPolicy | None = None,
    rules: JourneyRules = JourneyRules(),  # noqa: B008
) -> dict[str, Any]:
    """Handle one received CRM event end to end; safe to run again for the same event.

    A code is issued at `now`, when the event is processed, not when the failure occurred: an event posted
    late would otherwise get a code already expired. A later step carrying it extends it (`_valid_from`).
    """
    config = config or recovery_config()
    policy = policy or CompensationPolicy.default()
    event = load_event(engine, event_id)
    cid = event["customer_id"]
    if not starts_recovery(event["type"]):
        _processed(engine, event_id, now)
        reason = f"{event['type']} events start no recovery journey (only complaint.* and ticket.* do)"
        return {"customer_id": cid, "action": "ignored", "reason": reason}
    _require_category(event_id, event)
    key = str(event.get("ticket_id") or event.get("order_id") or event_id)
    started = utc(dt.datetime.fromisoformat(event["occurred_at"])) if event.get("occurred_at") else now
    run_id, as_of, superseded = _open_journey(engine, config, key, cid, started)
    result: dict[str, Any] = {"run_id": run_id, "journey": key, "customer_id": cid}
    if superseded is not None:
        result["superseded"] = superseded
    with engine.connect() as conn:
        decided = conn.execute(
            select(Decision.action, Decision.arm, Decision.channel, Decision.reason).where(Decision.run_id == run_id)
        ).first()
    if decided is None:
        findings = Findings()
        frame = _decide(engine, src, event, as_of, now, config, policy, findings)
        with engine.begin() as conn:
            runs.record_decisions(conn, run_id, frame)
            quarantine.store(conn, run_id, quality.masked_findings(findings))
            offer_due = frame.loc[0, "offer_kind"] != "none" and frame.loc[0, "arm"] == "treatment"
            if frame.loc[0, "action"] == "contact" and offer_due:
                # issued when processed, not at the failure: a late event's code would be born expired
                issue_offers(conn, run_id, now, frame, config.currency, config.offer_expiry_days)
            decided = conn.execute(
                select(Decision.action, Decision.arm, Decision.channel, Decision.reason).where(
                    Decision.run_id == run_id
                )
            ).first()
    action, _arm, channel, reason = decided
    result.update(action=action, reason=reason)
    if action != "contact":
        _processed(engine, event_id, now)
        return result
    with engine.connect() as conn:
        so_far = journeys.steps_so_far(conn, run_id)
        offer_given = journeys.offer_already_sent_or_queued(conn, run_id)
        offers = offers_for_run(conn, run_id)
    with src.reader(engine).connect() as conn:
        details = queries.contact_details(conn, src, [cid])
        last = queries.last_orders(conn, src, [cid], as_of)
    if details.empty:
        raise ValueError(
            f"CRM event {event_id!r}: customer {cid!r} has no contact details (no longer in the customers table)"
        )
    offer = offers.iloc[0].to_dict() if len(offers) else None
    steps = plan_steps(
        event["type"],
        int(event.get("severity") or 1),
        now,
        has_offer=offer is not None,
        steps_so_far=set(so_far),
        offer_given=offer_given,
        rules=rules,
    )
    person = details.iloc[0].to_dict()
    base = {
        "first_name": person.get("first_name"),
        "locale": person.get("locale"),
        "failure_category": event.get("category"),
        "order_id": event.get("order_id") or key,
        "occurred_at": event.get("occurred_at"),
        "unresolved": event["type"] != "ticket.closed",
        "description": event.get("description"),
        "last_order_at": last["last_order_at"].iloc[0].isoformat() if len(last) else None,
    }
    # the same zone the campaign uses (a valid profile zone, else the phone's), kept on each row so the
    # sender re-checks quiet hours when a later step finally goes
    zone = recipient_time_zone(person.get("time_zone"), person.get("phone"), person.get("locale"))
    quiet = config.contact.quiet_start_hour, config.contact.quiet_end_hour
    rows = []
    for step in steps:
        ctx = dict(base, unresolved=base["unresolved"] and step.step == "apology")
        ctx.update(send_window_context(zone, *quiet))
        at = next_allowed(step.at, zone, config.contact.quiet_end_hour, config.contact.quiet_start_hour)
        if step.with_offer and offer:
            offer = _valid_from(offer, at, config.offer_expiry_days)
            ctx.update(_offer_fields(offer))
        address = person.get("email") if channel == "email" else person.get("phone")
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
    with engine.begin() as conn:
        if offer and _record_extension(conn, run_id, cid, offer):
            result["offer_expiry_extended_to"] = offer["expires_at"].isoformat()
        result["queued"] = outbox.enqueue(conn, rows)
    report = send_due(
        engine,
        channels,
        run_id=run_id,
        campaign_id=CAMPAIGN_ID,
        now=now,
        stop_check=journeys.returned_customers(engine, src),
        source=src,
    )
    result["sending"] = report.as_dict()
    _processed(engine, event_id, now)
    return result


def _valid_from(offer: dict[str, Any], sent_at: dt.datetime, days: int) -> dict[str, Any]:
    """`offer`, its expiry moved so a message sent at `sent_at` gives the customer the full `days` days.

    The code was issued when the journey first decided; a later step (the "resolved" message weeks on)
    carrying it must not print a date already gone. Never shortened.
    """
    wanted = expiry_for(sent_at, days)
    current = utc(offer["expires_at"].to_pydatetime())
    if current >= wanted:
        return offer
    return dict(offer, expires_at=pd.Timestamp(wanted), previous_expiry=current)


def _offer_fields(offer: dict[str, Any]) -> dict[str, Any]:
    """The merge fields of a message carrying the code; `offer_amount` is the money it states."""
    return {
        "code": offer["code"],
        "offer_kind": offer["offer_kind"],
        "offer_value": float(offer["offer_value"]),
        "offer_amount": float(offer["offer_amount"]),
        "currency": offer["currency"],
        "expires_at": offer["expires_at"].isoformat(),
    }


def _record_extension(conn: Connection, run_id: int, customer_id: str, offer: dict[str, Any]) -> bool:
    """Store an expiry `_valid_from` moved; True if it was moved here.

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


def _processed(engine: Engine, event_id: str, now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(CrmEvent).where(CrmEvent.event_id == event_id).values(processed_at=now))


def recover_pending(
    engine: Engine, src: SourceTables, channels: dict[str, Channel], now: dt.datetime, settle_seconds: float = 120
) -> dict[str, str]:
    """Recover every CRM event received more than `settle_seconds` ago and never processed (a lost trigger).

    Returns event id → action, or `error: <event id>: <problem>` for an event that could not be recovered.
    Any error is reported and logged, not raised, so one bad event never blocks the others nor the hourly
    send that follows the sweep (flows.dispatch); the event stays unprocessed and is tried again next hour.
    """
    with engine.connect() as conn:
        pending = (
            conn.execute(
                select(CrmEvent.event_id)
                .where(
                    CrmEvent.processed_at.is_(None), CrmEvent.received_at <= now - dt.timedelta(seconds=settle_seconds)
                )
                .order_by(CrmEvent.received_at)
            )
            .scalars()
            .all()
        )
    outcomes: dict[str, str] = {}
    for event_id in pending:
        try:
            outcomes[event_id] = recover(engine, src, event_id, channels, now)["action"]
        except Exception as exc:
            outcomes[event_id] = _failed(event_id, exc)
    return outcomes


def _failed(event_id: str, exc: Exception) -> str:
    """Log a failed recovery and return its outcome.

    An unforeseen error also gets its traceback's frames (source lines hold no customer data), but never its
    message in full: see `_problem`.
    """
    problem = _problem(exc)
    if isinstance(exc, ValueError):
        log.error("CRM event %s not recovered: %s", event_id, problem)
    else:
        frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
        log.error("CRM event %s not recovered: %s\n%s", event_id, problem, frames)
    return f"error: {event_id}: {problem}"


def _problem(exc: Exception) -> str:
    """One line saying what went wrong, fit for a log line.

    A database error's text carries the statement's parameters (addresses among them) and PostgreSQL's
    DETAIL line quotes the offending values, so only the driver's first line is kept; any email address
    or phone number left is masked. Our own ValueErrors name the record and the problem already.
    """
    line = error_line(exc)
    return redact_text(line if isinstance(exc, ValueError) else f"{type(exc).__name__}: {line}")


def sweep_summary(outcomes: dict[str, str]) -> dict[str, Any]:
    """The sweep's part of the flow's result: how many events were recovered, and the ones that were not."""
    if not outcomes:
        return {}
    errors = [outcome for outcome in outcomes.values() if outcome.startswith("error: ")]
    summary: dict[str, Any] = {"recovered_crm_events": len(outcomes) - len(errors)}
    if errors:
        summary["crm_event_errors"] = errors
    return summary
