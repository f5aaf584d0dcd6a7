"""A recovery's decision for one CRM event: the customer as of the failure, against the month's budget.

`stages.recovery` calls `decide_event` once per journey (the first event about a ticket). It reads the
customer's record and orders from the warehouse and their opt-outs from winback's state, through the
engines the caller passes; it writes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from winback.config import CampaignConfig
from winback.messages.channel_choice import choose_channels
from winback.offers.policy import CompensationPolicy
from winback.segments.decision import DECISION_COLUMNS, decide
from winback.segments.holdout import held_out
from winback.segments.scoring import score_with_rules
from winback.stages import quality
from winback.warehouse import queries, runs
from winback.warehouse.models import CampaignRun, Offer
from winback.warehouse.quality import Findings, QualityRules
from winback.warehouse.quality_orders import order_amount as order_amount_of
from winback.warehouse.source import SourceTables

CAMPAIGN_ID = "crm-recovery"  # every journey is a run of this campaign, one per ticket


def budget_left(state: Engine, config: CampaignConfig, when: dt.datetime) -> float:
    """The month's compensation budget minus the expected cost of the codes already issued this month."""
    month = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with state.connect() as conn:
        spent = conn.execute(
            select(func.coalesce(func.sum(Offer.expected_cost), 0))
            .join(CampaignRun, CampaignRun.id == Offer.run_id)
            .where(CampaignRun.campaign_id == config.campaign_id, Offer.issued_at >= month)
        ).scalar_one()
    return max(0.0, config.budget - float(spent))


def _one(cid: str) -> queries.IdRange:
    return (cid, cid)


def decide_event(
    state: Engine,
    warehouse: Engine,
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
    `findings`); a customer whose own record is quarantined is skipped with that reason. `warehouse` reads
    `src` (read only); `state` is winback's own database.
    """
    cid = event["customer_id"]
    limits = config.data_quality
    rules = QualityRules(as_of, now, limits.max_plausible_amount, limits.max_bad_share)
    with warehouse.connect() as conn:  # the customer's record and orders
        summary = queries.customer_summary(conn, src, as_of, _one(cid), rules=rules, findings=findings)
        reach = queries.reachability(conn, src, _one(cid), findings=findings)
        order_amount = None
        if event.get("order_id"):
            order_amount = order_amount_of(conn, src, event["order_id"], rules, findings)
    with state.connect() as conn:  # the customer's opt-outs
        suppressed = runs.suppressions(conn, [cid])
    if reach.empty and cid in findings.held_customers:
        problem = next(r[5] for r in findings.records if r[0] == src.customers.name and r[2] == cid)
        reason = f"skipped: their customer record is quarantined ({problem}): see `winback quality`"
        return quality.skip_decisions(pd.DataFrame({"customer_id": [cid], "reason": [reason]}), DECISION_COLUMNS)
    if reach.empty:
        raise ValueError(f"CRM event {event['event_id']!r}: customer {cid!r} is not in the customers table")
    frame = _features(reach, suppressed, event, summary, as_of, config, order_amount)
    with warehouse.connect() as conn:  # the phone is read with phonenumbers before SMS is kept
        frame = quality.screen_sms_phones(conn, src, frame, suppressed, findings)
    left = budget_left(state, config, now)
    decided = decide(frame, config.model_copy(update={"holdout_share": 0.0, "budget": left}), policy)
    with warehouse.connect() as conn:
        decided = quality.contact_fallbacks(conn, src, decided, reach, findings)
    return _hold_out_compensation(decided, config, cid)


def _features(
    reach: pd.DataFrame,
    suppressed: pd.DataFrame,
    event: dict[str, Any],
    summary: pd.DataFrame,
    as_of: dt.datetime,
    config: CampaignConfig,
    order_amount: float | None,
) -> pd.DataFrame:
    """The one-row frame `decide` reads: the customer's channels, the failure, and their scored value."""
    rfm = queries.summary_to_rfm(summary, as_of)
    scored, _ = score_with_rules(rfm, config.economics)
    value = float(scored["customer_value"].iloc[0]) if len(scored) else 0.0
    spend = float(scored["mean_spend"].iloc[0]) if len(scored) else float(order_amount or 0.0)
    return choose_channels(reach, suppressed).assign(
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


def _hold_out_compensation(decided: pd.DataFrame, config: CampaignConfig, cid: str) -> pd.DataFrame:
    """The random control: a held-out customer is told sorry but offered nothing; the rest are treated."""
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
