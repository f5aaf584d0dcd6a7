"""Service recovery for one CRM event: decide, compensate, and plan the journey's messages, in minutes.

The flow `flows/recover.py` wraps `recover()`; the hourly sweep (`stages.recovery_sweep.recover_pending`)
catches the events whose trigger never ran. A journey is one run of the `crm-recovery` campaign per
ticket (the event's `ticket_id`, else its order, else its own id), so every later event about the same
ticket extends the same journey and redelivered events add nothing.

The caller owns the engines: `state` (winback's database) and `warehouse` (the customer's, read only;
the same engine when the source tables live in the state database), and builds `RecoverySetup` from the
settings once, at the edge. A journey commits in steps (the run, the decision and its code, the messages,
each send), each a transaction on `state`, so a crash between them is resumed by running it again.

The holdout here keeps the compensation, never the apology: everyone is told sorry; a random share is
not offered compensation, which is what the lift of compensation is measured against.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from winback.config import CampaignConfig
from winback.delivery.dispatch import Channel, send_due
from winback.delivery.limits import SendLimits
from winback.delivery.registry import configured_channels
from winback.messages.journey import JourneyRules
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.offers.issue import issue_offers, offers_for_run
from winback.offers.policy import CompensationPolicy
from winback.settings import Settings
from winback.stages import quality
from winback.stages.recovery_decide import CAMPAIGN_ID, decide_event
from winback.stages.recovery_messages import plan_messages, queue_messages
from winback.warehouse import journeys, quarantine, queries, runs
from winback.warehouse.crm import CATEGORIES, starts_recovery
from winback.warehouse.models import CrmEvent, Decision
from winback.warehouse.quality import Findings
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc

__all__ = ["CAMPAIGN_ID", "RecoverySetup", "load_event", "recover", "recovery_config"]


def recovery_config(budget: float) -> CampaignConfig:
    """The `crm-recovery` campaign: `budget` is its compensation per calendar month (WINBACK_RECOVERY_BUDGET)."""
    return CampaignConfig(campaign_id=CAMPAIGN_ID, segments=["aggrieved"], holdout_share=0.1, budget=budget)


@dataclass(frozen=True)
class RecoverySetup:
    """Everything a recovery needs besides its engines and the event, read from the settings once.

    Attributes
    ----------
    channels
        The channel adapters messages go out through ("email", "sms").
    config
        The `crm-recovery` campaign: budget, holdout share, contact rules, offer expiry.
    limits
        Send rates and concurrency.
    links
        How unsubscribe links are signed and where they point.
    policy
        The compensation policy (by default the one winback ships with).
    rules
        How the journey is paced.
    """

    channels: dict[str, Channel]
    config: CampaignConfig
    limits: SendLimits
    links: UnsubscribeLinks
    policy: CompensationPolicy = field(default_factory=CompensationPolicy.default)
    rules: JourneyRules = field(default_factory=JourneyRules)

    @classmethod
    def from_settings(cls, settings: Settings, channels: dict[str, Channel] | None = None) -> RecoverySetup:
        """The setup the settings configure; `channels` overrides the configured providers (tests, the demo)."""
        return cls(
            channels=channels if channels is not None else configured_channels(settings),
            config=recovery_config(settings.recovery_budget),
            limits=SendLimits.from_settings(settings),
            links=UnsubscribeLinks.from_settings(settings),
        )


def load_event(state: Engine, event_id: str) -> dict[str, Any]:
    """The payload of a received CRM event; a ValueError when it was never received."""
    with state.connect() as conn:
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


def _open_journey(
    state: Engine, config: CampaignConfig, key: str, customer_id: str, started: dt.datetime
) -> tuple[int, dt.datetime, int | None]:
    """The ticket's journey run (created on first sight) → (run id, as_of, older steps superseded or None).

    A new journey supersedes the customer's older ones in the transaction that creates it: done in a second
    one, a crash in between left the older follow-ups queued for good, as the retry finds the run already made.
    """
    with Session(state) as session, session.begin():
        runs.ensure_campaign(session, CAMPAIGN_ID, "recovery", config.model_dump(mode="json"))
        run, created = journeys.journey_run(session, CAMPAIGN_ID, key, started)
        superseded = None
        if created:
            superseded = journeys.supersede_other_journeys(session.connection(), CAMPAIGN_ID, customer_id, run.id)
        return run.id, utc(run.as_of), superseded


def _decision(state: Engine, run_id: int) -> Any:
    """The journey's recorded decision (action, arm, channel, reason), or None before it is made."""
    with state.connect() as conn:
        return conn.execute(
            select(Decision.action, Decision.arm, Decision.channel, Decision.reason).where(Decision.run_id == run_id)
        ).first()


def _decide_once(
    state: Engine,
    warehouse: Engine,
    src: SourceTables,
    event: dict[str, Any],
    run_id: int,
    times: tuple[dt.datetime, dt.datetime],
    setup: RecoverySetup,
) -> None:
    """Decide the journey and issue its code, in one transaction with what the data-quality gate set aside."""
    as_of, now = times
    config = setup.config
    findings = Findings()
    frame = decide_event(state, warehouse, src, event, as_of, now, config, setup.policy, findings)
    with state.begin() as conn:
        runs.record_decisions(conn, run_id, frame)
        quarantine.store(conn, run_id, quality.masked_findings(findings))
        offer_due = frame.loc[0, "offer_kind"] != "none" and frame.loc[0, "arm"] == "treatment"
        if frame.loc[0, "action"] == "contact" and offer_due:
            # issued when processed, not at the failure: a late event's code would be born expired
            issue_offers(conn, run_id, now, frame, config.currency, config.offer_expiry_days)


def recover(
    state: Engine,
    warehouse: Engine,
    src: SourceTables,
    event_id: str,
    now: dt.datetime,
    setup: RecoverySetup,
) -> dict[str, Any]:
    """Handle one received CRM event end to end; safe to run again for the same event.

    A code is issued at `now`, when the event is processed, not when the failure occurred: an event posted
    late would otherwise get a code already expired. A later step carrying it extends it.

    Parameters
    ----------
    state
        Winback's database: the event ledger, runs, decisions, offers and outbox.
    warehouse
        The customer's database the source tables `src` are read from (read only; may be `state`).
    src
        The source tables, as the edge built them (`SourceTables.from_settings`).
    event_id
        The CRM event, already recorded by the intake.
    now
        When it is processed.
    setup
        Channels, campaign config, limits, links, policy and pacing (`RecoverySetup.from_settings`).

    Returns
    -------
    dict
        The run, journey, customer, action and reason; for a contact, what was queued and sent.
    """
    event = load_event(state, event_id)
    cid = event["customer_id"]
    if not starts_recovery(event["type"]):
        _processed(state, event_id, now)
        reason = f"{event['type']} events start no recovery journey (only complaint.* and ticket.* do)"
        return {"customer_id": cid, "action": "ignored", "reason": reason}
    _require_category(event_id, event)
    key = str(event.get("ticket_id") or event.get("order_id") or event_id)
    started = utc(dt.datetime.fromisoformat(event["occurred_at"])) if event.get("occurred_at") else now
    run_id, as_of, superseded = _open_journey(state, setup.config, key, cid, started)
    result: dict[str, Any] = {"run_id": run_id, "journey": key, "customer_id": cid}
    if superseded is not None:
        result["superseded"] = superseded
    if _decision(state, run_id) is None:
        _decide_once(state, warehouse, src, event, run_id, (as_of, now), setup)
    action, _arm, channel, reason = _decision(state, run_id)
    result.update(action=action, reason=reason)
    if action != "contact":
        _processed(state, event_id, now)
        return result
    with state.connect() as conn:
        progress = set(journeys.steps_so_far(conn, run_id)), journeys.offer_already_sent_or_queued(conn, run_id)
        offers = offers_for_run(conn, run_id)
    with warehouse.connect() as conn:
        details = queries.contact_details(conn, src, [cid])
        last = queries.last_orders(conn, src, [cid], as_of)
    if details.empty:
        raise ValueError(
            f"CRM event {event_id!r}: customer {cid!r} has no contact details (no longer in the customers table)"
        )
    rows, offer = plan_messages(
        event,
        (run_id, key, channel),
        details.iloc[0].to_dict(),
        last["last_order_at"].iloc[0] if len(last) else None,
        offers.iloc[0].to_dict() if len(offers) else None,
        progress,
        now,
        setup.config,
        setup.rules,
    )
    result.update(queue_messages(state, run_id, cid, rows, offer))
    report = send_due(
        state,
        setup.channels,
        run_id=run_id,
        campaign_id=CAMPAIGN_ID,
        now=now,
        limits=setup.limits,
        stop_check=journeys.returned_customers(state, src),
        source=src,
        links=setup.links,
    )
    result["sending"] = report.as_dict()
    _processed(state, event_id, now)
    return result


def _processed(state: Engine, event_id: str, now: dt.datetime) -> None:
    with state.begin() as conn:
        conn.execute(update(CrmEvent).where(CrmEvent.event_id == event_id).values(processed_at=now))
