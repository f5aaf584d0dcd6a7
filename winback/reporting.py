"""Assemble a run's retention report from the warehouse: lift by arm and group, curves, root causes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, and_, case, func, select

from offers.policy import CompensationPolicy
from reports.html import ReportData
from reports.retention import retention_curve
from reports.stats import lift_table
from warehouse.models import CampaignRun, Decision, MessageEvent, Offer, OutboxMessage, Return
from warehouse.queries import failure_profile
from warehouse.returns import measured_customers
from warehouse.source import SourceTables
from warehouse.timeutil import utc, utcnow
from winback.config import CampaignConfig

BREAKDOWNS = ("segment", "channel", "offer_kind", "failure_category")


def latest_run_id(conn: Connection, campaign_id: str | None = None) -> int:
    stmt = select(CampaignRun.id).order_by(CampaignRun.as_of.desc(), CampaignRun.id.desc()).limit(1)
    if campaign_id:
        stmt = stmt.where(CampaignRun.campaign_id == campaign_id)
    run_id = conn.execute(stmt).scalar_one_or_none()
    if run_id is None:
        raise ValueError(f"no campaign runs{' for ' + campaign_id if campaign_id else ''} yet: run a campaign first")
    return run_id


def root_causes(
    conn: Connection, src: SourceTables, run_id: int, since: dt.datetime, until: dt.datetime
) -> pd.DataFrame:
    """Per failure category: volume, recovery rate, repeat-failure rate, compensation cost.

    Volume and repeats come from the business's failure records in [since, until); recovery (the
    share of the run's aggrieved customers in that category who came back) and the cost of the
    compensation actually redeemed come from winback's own tables. Sorted by volume: fix the top first.
    """
    profile = failure_profile(conn, src, since, until)
    stmt = (
        select(
            Decision.failure_category,
            func.count().label("aggrieved"),
            func.sum(case((Return.returned, 1), else_=0)).label("returned"),
            func.coalesce(func.sum(case((Offer.redeemed_at.is_not(None), Offer.value), else_=0)), 0).label("cost"),
        )
        .outerjoin(Return, and_(Return.run_id == Decision.run_id, Return.customer_id == Decision.customer_id))
        .outerjoin(Offer, and_(Offer.run_id == Decision.run_id, Offer.customer_id == Decision.customer_id))
        .where(Decision.run_id == run_id, Decision.segment == "aggrieved", Decision.arm == "treatment")
        .group_by(Decision.failure_category)
    )
    recovery = pd.DataFrame.from_records(
        conn.execute(stmt).fetchall(),
        columns=["failure_category", "aggrieved", "returned", "compensation_cost"],
    )
    frame = profile.merge(recovery, on="failure_category", how="outer")
    frame["volume"] = frame["volume"].fillna(0).astype(int)
    frame["recovery_rate"] = (frame["returned"].astype(float) / frame["aggrieved"].astype(float)).round(4)
    frame["repeat_failure_rate"] = (frame["repeat_customers"].astype(float) / frame["customers"].astype(float)).round(4)
    frame["compensation_cost"] = frame["compensation_cost"].astype(float).fillna(0.0)
    frame["resolved_share"] = frame["resolved_share"].astype(float).round(3)
    keep = [
        "failure_category",
        "volume",
        "recovery_rate",
        "repeat_failure_rate",
        "compensation_cost",
        "resolved_share",
    ]
    return frame[keep].sort_values("volume", ascending=False, ignore_index=True)


EVENT_TYPES = ("delivered", "open", "click", "bounce", "spamreport", "unsubscribe")


def delivery_funnel(conn: Connection, run_id: int) -> pd.DataFrame:
    """Per channel: messages by outbox outcome, then how many got each provider event (distinct messages)."""
    outcomes = pd.DataFrame.from_records(
        conn.execute(
            select(OutboxMessage.channel, OutboxMessage.status, func.count())
            .where(OutboxMessage.run_id == run_id)
            .group_by(OutboxMessage.channel, OutboxMessage.status)
        ).fetchall(),
        columns=["channel", "status", "n"],
    )
    events = pd.DataFrame.from_records(
        conn.execute(
            select(OutboxMessage.channel, MessageEvent.event_type, func.count(func.distinct(MessageEvent.outbox_id)))
            .join(OutboxMessage, OutboxMessage.id == MessageEvent.outbox_id)
            .where(OutboxMessage.run_id == run_id)
            .group_by(OutboxMessage.channel, MessageEvent.event_type)
        ).fetchall(),
        columns=["channel", "status", "n"],
    )
    columns = ["queued", "sent", "skipped", "failed", "unknown", *EVENT_TYPES]
    frame = pd.concat([outcomes, events], ignore_index=True)
    if frame.empty:
        return pd.DataFrame(columns=["channel", *columns])
    wide = frame.pivot_table(index="channel", columns="status", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=columns, fill_value=0).astype(int).reset_index()
    return wide


def build_report(
    conn: Connection, src: SourceTables, run_id: int, config: CampaignConfig, notes: list[str] | None = None
) -> ReportData:
    """Everything the HTML report and its CSV/JSON twins show, for one tracked run."""
    as_of = conn.execute(select(CampaignRun.as_of).where(CampaignRun.id == run_id)).scalar_one()
    campaign_id = conn.execute(select(CampaignRun.campaign_id).where(CampaignRun.id == run_id)).scalar_one()
    tracked = conn.execute(select(func.count()).select_from(Return).where(Return.run_id == run_id)).scalar_one()
    if not tracked:
        raise ValueError(f"run {run_id} has no tracked returns yet: run `winback track` first")
    econ = config.economics
    policy = CompensationPolicy.from_yaml(config.policy_file) if config.policy_file else CompensationPolicy.default()
    frame = measured_customers(conn, run_id, dict(econ.contact_cost), econ.margin, policy.shipping_cost)
    overall = lift_table(frame, None)
    breakdowns = {name: lift_table(frame, [name]) for name in BREAKDOWNS if frame[name].nunique() > 0}
    start = utc(as_of)
    return ReportData(
        title=f"Retention report: {campaign_id}",
        campaign_id=campaign_id,
        generated_at=utcnow(),
        overall=overall,
        breakdowns=breakdowns,
        retention=retention_curve(frame, max_days=config.attribution_days),
        delivery=delivery_funnel(conn, run_id),
        root_causes=root_causes(conn, src, run_id, start - dt.timedelta(days=config.aggrieved.lookback_days), start),
        notes=notes or [],
        period_start=start.date(),
        period_end=(start + dt.timedelta(days=config.attribution_days)).date(),
        currency=config.currency,
    )


def headline_markdown(report: ReportData) -> str:
    """The report's headline as Markdown: what a reviewer reads first in the Prefect UI."""
    row = report.overall.iloc[0]
    pct = "{:.1%}".format
    lines = [
        f"# {report.title}",
        "",
        f"Period {report.period_start} → {report.period_end}.",
        "",
        "| | treated | holdout |",
        "|---|---|---|",
        f"| customers | {int(row['n_treated']):,} | {int(row['n_holdout']):,} |",
        f"| returned | {pct(row['rate_treated'])} | {pct(row['rate_holdout'])} |",
        "",
        f"**Lift** {row['abs_lift'] * 100:+.1f} pp (95% CI {row['abs_lift_low'] * 100:+.1f} to "
        f"{row['abs_lift_high'] * 100:+.1f} pp); incremental revenue {row['incremental_revenue']:,.2f} "
        f"{report.currency}; offer cost {row['offer_cost']:,.2f}, messaging {row['message_cost']:,.2f}.",
    ]
    if isinstance(row.get("warning"), str) and row["warning"]:
        lines += ["", f"> ⚠ {row['warning']}"]
    lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
