"""The small reads behind the CLI's questions.

One customer's latest decision and message, the campaigns and their runs, the model a run decided with.
Each takes the caller's connection.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, select

from winback.warehouse.models import Campaign, CampaignRun, Decision, OutboxMessage, Return
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc

DEFAULT_CURRENCY = "EUR"  # CampaignConfig's default, for a campaign stored without one


def latest_decision(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """The newest decision about a customer in any campaign.

    With the run's campaign, as-of and currency, and `lift`: the lift the run assumed for the decision's
    offer kind (None when it did not say).
    """
    row = (
        conn.execute(
            select(Decision.__table__, CampaignRun.campaign_id, CampaignRun.as_of, CampaignRun.stats, Campaign.config)
            .join(CampaignRun, CampaignRun.id == Decision.run_id)
            .outerjoin(Campaign, Campaign.id == CampaignRun.campaign_id)
            .where(Decision.customer_id == customer_id)
            .order_by(CampaignRun.as_of.desc(), Decision.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    decision = dict(row)
    decision["as_of"] = utc(decision["as_of"])
    decision["currency"] = (decision.pop("config") or {}).get("currency") or DEFAULT_CURRENCY
    decision["lift"] = ((decision.pop("stats") or {}).get("lift_used") or {}).get(decision["offer_kind"])
    return decision


def is_customer(conn: Connection, src: SourceTables, customer_id: str) -> bool:
    """Whether the business's customers table holds this id."""
    c = src.customers
    found = conn.execute(select(src.col(c, "customer_id")).where(src.col(c, "customer_id") == customer_id).limit(1))
    return found.first() is not None


def latest_message(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """The newest outbox row for a customer (any campaign, any status)."""
    row = (
        conn.execute(
            select(OutboxMessage.__table__)
            .where(OutboxMessage.customer_id == customer_id)
            .order_by(OutboxMessage.created_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def latest_model_run(conn: Connection, campaign_id: str | None = None) -> dict[str, Any] | None:
    """The newest campaign run (not a recovery journey) of one campaign or any: id, campaign, as-of, stats."""
    stmt = select(CampaignRun.id, CampaignRun.campaign_id, CampaignRun.as_of, CampaignRun.stats).where(
        CampaignRun.journey_key == ""
    )
    if campaign_id:
        stmt = stmt.where(CampaignRun.campaign_id == campaign_id)
    row = conn.execute(stmt.order_by(CampaignRun.as_of.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None


@dataclass(frozen=True)
class CampaignRuns:
    """One campaign's runs at a glance: how many, how many tracked, and the newest."""

    campaign_id: str
    runs: int
    tracked_runs: int
    latest_run_id: int
    latest_as_of: dt.datetime


def campaign_runs(conn: Connection) -> list[CampaignRuns]:
    """Every campaign that has runs, newest first."""
    tracked = select(Return.run_id).distinct().subquery()
    stmt = (
        select(
            CampaignRun.campaign_id,
            func.count(CampaignRun.id),
            func.count(tracked.c.run_id),
            func.max(CampaignRun.id),
            func.max(CampaignRun.as_of),
        )
        .outerjoin(tracked, tracked.c.run_id == CampaignRun.id)
        .group_by(CampaignRun.campaign_id)
        .order_by(func.max(CampaignRun.as_of).desc())
    )
    return [
        CampaignRuns(campaign, int(runs), int(done), int(latest), utc(as_of))
        for campaign, runs, done, latest, as_of in conn.execute(stmt)
    ]


def run_campaign_config(conn: Connection, run_id: int) -> tuple[str, dict[str, Any]] | None:
    """A run's campaign id and the configuration stored with the campaign; None for an unknown run."""
    row = conn.execute(
        select(CampaignRun.campaign_id, Campaign.config)
        .outerjoin(Campaign, Campaign.id == CampaignRun.campaign_id)
        .where(CampaignRun.id == run_id)
    ).first()
    return None if row is None else (row[0], dict(row[1] or {}))


def contacted_customer(conn: Connection, run_id: int) -> str | None:
    """A customer the run contacted and messaged, to show with `explain`/`preview`.

    The first by id, preferring one offered something by email (the fullest message).
    """
    return conn.execute(
        select(Decision.customer_id)
        .join(
            OutboxMessage,
            (OutboxMessage.run_id == Decision.run_id) & (OutboxMessage.customer_id == Decision.customer_id),
        )
        .where(Decision.run_id == run_id, Decision.action == "contact", OutboxMessage.status == "sent")
        .order_by(
            case((Decision.offer_kind == "none", 1), else_=0),
            case((Decision.channel == "email", 0), else_=1),
            Decision.customer_id,
        )
        .limit(1)
    ).scalar_one_or_none()
