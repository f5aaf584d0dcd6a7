"""Assemble a run's retention report from the warehouse: lift by arm and group, curves, root causes.

The report covers what tracking has observed, not what the campaign config intended: the window is the
one `winback track` measured (wb_returns.window_days), and a run tracked 7 days into a 30-day window is
reported as 7 days of data, with a "window open" banner. Unless asked for a run, the report picks the
latest run whose window has closed and been tracked since: the weekly report runs before that week's
campaign, so the latest run is always a week into its window.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Connection, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from winback.config import CampaignConfig
from winback.offers.policy import load_policy
from winback.reports.html import ReportData, window_status
from winback.reports.retention import retention_curve
from winback.reports.stats import lift_table
from winback.reports.uplift_evaluation import evaluate_uplift
from winback.reports.variant_comparison import variant_comparison
from winback.warehouse import quarantine
from winback.warehouse.models import CampaignRun, MessageEvent, OutboxMessage, Return
from winback.warehouse.queries import failure_profile
from winback.warehouse.returns import measured_customers, window_closed
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import epoch_days, to_epoch_days, utc, utcnow

BREAKDOWNS = ("segment", "channel", "offer_kind", "failure_category")


def latest_run_id(conn: Connection, campaign_id: str | None = None) -> int:
    """The newest run (tracked or not); `choose_report_run` is what a report without a run id uses."""
    stmt = select(CampaignRun.id).order_by(CampaignRun.as_of.desc(), CampaignRun.id.desc()).limit(1)
    if campaign_id:
        stmt = stmt.where(CampaignRun.campaign_id == campaign_id)
    run_id = conn.execute(stmt).scalar_one_or_none()
    if run_id is None:
        raise ValueError(f"no campaign runs{' for ' + campaign_id if campaign_id else ''} yet: run a campaign first")
    return run_id


@dataclass(frozen=True)
class TrackedWindow:
    """The attribution window a run's returns were measured over, and how much of it tracking has seen.

    Orders after the last tracking do not exist yet, so the report's period ends at
    min(as_of + window, tracked_at), whatever the window.
    """

    as_of: dt.datetime
    days: int
    tracked_at: dt.datetime

    @property
    def end(self) -> dt.datetime:
        """When the attribution window ends, whether or not tracking has reached it."""
        return self.as_of + dt.timedelta(days=self.days)

    @property
    def closed(self) -> bool:
        """Whether the window had closed and was tracked once it had: only then are its returns complete."""
        return bool(window_closed(to_epoch_days(self.as_of), self.days, to_epoch_days(self.tracked_at)))

    @property
    def observed_until(self) -> dt.datetime:
        """The end of the period seen: the window's end, or the last tracking if that came first."""
        return max(self.as_of, min(self.end, self.tracked_at))

    @property
    def observed_days(self) -> float:
        """Days of the window observed: 6.9 when a Monday 09:00 run is tracked the next Monday at 06:30."""
        return (self.observed_until - self.as_of) / dt.timedelta(days=1)

    @property
    def curve_days(self) -> int:
        """The retention curve's last day: rounded up, so its last point holds every return in the rates."""
        return math.ceil(self.observed_days - 1e-9)


def tracked_window(conn: Connection, run_id: int) -> TrackedWindow:
    """Read the window and the last tracking time from the run's wb_returns rows.

    `track_run` rewrites all of a run's rows at once, so they agree; the minimum is the safe reading
    should they ever not (the least that was observed).
    """
    as_of = conn.execute(select(CampaignRun.as_of).where(CampaignRun.id == run_id)).scalar_one_or_none()
    if as_of is None:
        raise ValueError(f"campaign run {run_id} does not exist")
    days, tracked_at = conn.execute(
        select(func.min(Return.window_days), func.min(Return.tracked_at)).where(Return.run_id == run_id)
    ).one()
    if days is None:
        raise ValueError(f"run {run_id} has no tracked returns yet: run `winback track` first")
    return TrackedWindow(utc(as_of), int(days), utc(tracked_at))


@dataclass(frozen=True)
class RunChoice:
    """The run a report shows when none was named, and what the reader should know about that choice."""

    run_id: int
    notes: list[str] = field(default_factory=list)


def choose_report_run(conn: Connection, campaign_id: str | None = None) -> RunChoice:
    """The latest run whose window has closed and been tracked since; else the latest tracked run.

    A window counts as closed only if a tracking ran after it closed: one last tracked on day 29 still
    misses a day of returns. Runs are compared in SQL, one aggregated row per run.
    """
    tracked = epoch_days(func.min(Return.tracked_at))
    closed = case((window_closed(epoch_days(CampaignRun.as_of), func.min(Return.window_days), tracked), 1), else_=0)
    stmt = (
        select(CampaignRun.id, CampaignRun.as_of, closed.label("closed"))
        .join(Return, Return.run_id == CampaignRun.id)
        .group_by(CampaignRun.id, CampaignRun.as_of)
        .order_by(closed.desc(), CampaignRun.as_of.desc(), CampaignRun.id.desc())
        .limit(1)
    )
    if campaign_id:
        stmt = stmt.where(CampaignRun.campaign_id == campaign_id)
    row = conn.execute(stmt).one_or_none()
    if row is None:  # nothing tracked yet: the latest run, which build_report refuses with the reason
        return RunChoice(latest_run_id(conn, campaign_id))
    run_id, as_of, is_closed = row
    of = f" of {campaign_id}" if campaign_id else ""
    if not is_closed:
        return RunChoice(
            run_id,
            [
                f"No run{of} has been tracked after its attribution window closed yet, so this report shows "
                f"the latest tracked run, {run_id} (as of {utc(as_of):%Y-%m-%d}), whose numbers are partial."
            ],
        )
    newer = _runs_after(conn, campaign_id, as_of)
    if not newer:
        return RunChoice(run_id)
    return RunChoice(
        run_id,
        [
            f"Run {run_id} (as of {utc(as_of):%Y-%m-%d}) is the latest run{of} whose attribution window has "
            f"closed and been tracked since; {newer} newer run{'s are' if newer > 1 else ' is'} still inside "
            "the window (report one with --run-id for early, partial numbers)."
        ],
    )


def _runs_after(conn: Connection, campaign_id: str | None, as_of: dt.datetime) -> int:
    stmt = select(func.count()).select_from(CampaignRun).where(CampaignRun.as_of > as_of)
    if campaign_id:
        stmt = stmt.where(CampaignRun.campaign_id == campaign_id)
    return int(conn.execute(stmt).scalar_one())


def root_causes(
    conn: Connection, src: SourceTables, measured: pd.DataFrame, since: dt.datetime, until: dt.datetime
) -> pd.DataFrame:
    """Per failure category: volume, recovery rate, repeat-failure rate, offer cost.

    Volume and repeats come from the business's failure records in [since, until). Recovery (the share
    of the run's treated aggrieved customers in that category who came back) and offer cost (what their
    offers actually cost, as measured per customer by `measured_customers`: a percent discount is money
    off an order, free shipping the shipping it waives) come from `measured`, the frame the lift tables
    use, so the two agree. Sorted by volume: fix the top first.
    """
    profile = failure_profile(conn, src, since, until)
    treated = measured.loc[(measured["segment"] == "aggrieved") & (measured["arm"] == "treatment")]
    recovery = treated.groupby("failure_category", as_index=False).agg(
        aggrieved=("customer_id", "size"),
        returned=("returned", "sum"),
        offer_cost=("offer_cost", "sum"),
    )
    frame = profile.merge(recovery, on="failure_category", how="outer")
    frame["volume"] = frame["volume"].fillna(0).astype(int)
    frame["recovery_rate"] = (frame["returned"].astype(float) / frame["aggrieved"].astype(float)).round(4)
    frame["repeat_failure_rate"] = (frame["repeat_customers"].astype(float) / frame["customers"].astype(float)).round(4)
    frame["offer_cost"] = frame["offer_cost"].astype(float).fillna(0.0).round(2)
    frame["resolved_share"] = frame["resolved_share"].astype(float).round(3)
    keep = [
        "failure_category",
        "volume",
        "recovery_rate",
        "repeat_failure_rate",
        "offer_cost",
        "resolved_share",
    ]
    return frame[keep].sort_values("volume", ascending=False, ignore_index=True)


OUTBOX_STATUSES = ("queued", "sent", "skipped", "failed", "unknown")
# Provider event types, shown as `event_<type>` columns so Twilio's queued/sent/failed never add into the
# outbox statuses of the same name. `machine_open` is an open SendGrid flags sg_machine_open (Apple Mail
# Privacy Protection fetching the pixel), not a reader.
EVENT_TYPES = (
    *("queued", "sent", "delivered", "undelivered", "failed"),  # Twilio
    *("open", "machine_open", "click", "bounce", "dropped", "blocked", "spamreport", "unsubscribe"),  # SendGrid
)
EVENT_PREFIX = "event_"
NOT_DELIVERED = ("bounce", "dropped", "blocked", "undelivered", "failed")  # a later `delivered` is not counted
UNSUBSCRIBE_PATH = "/unsubscribe/"


def delivery_funnel(conn: Connection, run_id: int) -> pd.DataFrame:
    """Per channel: messages by outbox status, then how many messages got each provider event (distinct).

    Provider events are the `event_*` columns. A message counts as delivered only if no event says it
    bounced, was dropped, blocked or undelivered; clicks on the unsubscribe link are not clicks (they are
    not engagement), and machine opens are counted apart from opens.
    """
    outcomes = pd.DataFrame.from_records(
        conn.execute(
            select(OutboxMessage.channel, OutboxMessage.status, func.count())
            .where(OutboxMessage.run_id == run_id)
            .group_by(OutboxMessage.channel, OutboxMessage.status)
        ).fetchall(),
        columns=["channel", "status", "n"],
    )
    etype = MessageEvent.event_type
    url = func.coalesce(MessageEvent.payload["url"].as_string(), "")
    kind = case(
        (and_(etype == "click", url.contains(UNSUBSCRIBE_PATH, autoescape=True)), "unsubscribe_click"),
        (and_(etype == "open", MessageEvent.payload["sg_machine_open"].as_boolean().is_(True)), "machine_open"),
        else_=etype,
    )
    failed = aliased(MessageEvent)
    not_delivered = select(failed.id).where(
        failed.outbox_id == MessageEvent.outbox_id, failed.event_type.in_(NOT_DELIVERED)
    )
    per_message = (
        select(OutboxMessage.channel.label("channel"), MessageEvent.outbox_id.label("outbox_id"), kind.label("kind"))
        .join(OutboxMessage, OutboxMessage.id == MessageEvent.outbox_id)
        .where(OutboxMessage.run_id == run_id, or_(etype != "delivered", ~not_delivered.exists()))
        .subquery()
    )
    events = pd.DataFrame.from_records(
        conn.execute(
            select(per_message.c.channel, per_message.c.kind, func.count(func.distinct(per_message.c.outbox_id)))
            .where(per_message.c.kind.in_(EVENT_TYPES))
            .group_by(per_message.c.channel, per_message.c.kind)
        ).fetchall(),
        columns=["channel", "status", "n"],
    )
    events["status"] = EVENT_PREFIX + events["status"]
    columns = [*OUTBOX_STATUSES, *(EVENT_PREFIX + t for t in EVENT_TYPES)]
    frame = pd.concat([outcomes, events], ignore_index=True)
    if frame.empty:
        return pd.DataFrame(columns=["channel", *columns])
    wide = frame.pivot_table(index="channel", columns="status", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=columns, fill_value=0).astype(int).reset_index()
    return wide


def unknown_notes(delivery: pd.DataFrame, run_id: int) -> list[str]:
    """A note when the delivery table counts `unknown` messages (a crash mid-call): what they are, who decides."""
    unknown = int(delivery["unknown"].sum()) if "unknown" in delivery else 0
    if not unknown:
        return []
    return [f"{unknown:,} message(s) of this run are unknown (a crash during their provider call; the provider may "
            f"have them): `winback outbox unknown --run-id {run_id}` lists them for a decision."]  # fmt: skip


def build_report(
    conn: Connection,
    src: SourceTables,
    run_id: int,
    config: CampaignConfig,
    notes: list[str] | None = None,
    warehouse: Connection | None = None,
) -> ReportData:
    """Everything the HTML report and its CSV/JSON twins show, for one tracked run.

    `conn` reads winback's state, `warehouse` (default `conn`) the source tables: never joined.

    Period, retention curve and window come from the tracking (`tracked_window`), not from
    `config.attribution_days`: the rates are over the window `winback track` measured, so far.
    """
    window = tracked_window(conn, run_id)
    campaign_id, stats = conn.execute(
        select(CampaignRun.campaign_id, CampaignRun.stats).where(CampaignRun.id == run_id)
    ).one()
    econ = config.economics
    policy = load_policy(config.policy_file)
    warehouse = warehouse if warehouse is not None else conn
    frame = measured_customers(
        conn, run_id, dict(econ.contact_cost), econ.margin, policy.shipping_cost, src=src, warehouse=warehouse
    )
    overall = lift_table(frame, None)
    breakdowns = {name: lift_table(frame, [name]) for name in BREAKDOWNS if frame[name].nunique() > 0}
    start, lookback = window.as_of, config.aggrieved.lookback_days
    delivery = delivery_funnel(conn, run_id)
    return ReportData(
        title=f"Retention report: {campaign_id}",
        campaign_id=campaign_id,
        generated_at=utcnow(),
        overall=overall,
        breakdowns=breakdowns,
        retention=retention_curve(frame, max_days=window.curve_days),
        delivery=delivery,
        root_causes=root_causes(warehouse, src, frame, start - dt.timedelta(days=lookback), start),
        notes=[*(notes or []), *unknown_notes(delivery, run_id), *data_quality_notes(conn, run_id)],
        period_start=start.date(),
        period_end=window.observed_until.date(),
        currency=config.currency,
        window_days=window.days,
        observed_days=window.observed_days,
        uplift=evaluate_uplift(conn, run_id, campaign_id, stats or {}, dict(econ.contact_cost), utcnow(), econ.margin),
        variants=variant_comparison(conn, run_id),
    )


DATA_QUALITY_NOTE = "Data quality: "  # the template shows these notes in a section of their own


def data_quality_notes(conn: Connection, run_id: int) -> list[str]:
    """The run's quarantine in words: how many source rows it left out (or used without a value), per table.

    None when it has none (a run from before the gate has none either, so "all passed" would not be known).
    """
    return quality_note_lines(quarantine.counts(conn, run_id), run_id)


# what one row of each of the demo's tables is, in words; a mapped table is named as it is
_ROW_NOUNS = {"customers": "customer", "orders": "order", "service_failures": "service-failure", "consents": "consent"}


def _rows(table: str, n: int | None = None) -> str:
    """Rows of `table` in words: 19 customer rows, 1 order row, 3 rows of dim_customer (no `n`: customer rows)."""
    rows = "row" if n == 1 else "rows"
    noun = _ROW_NOUNS.get(table.rsplit(".", 1)[-1])
    what = f"{noun} {rows}" if noun else f"{rows} of {table}"
    return what if n is None else f"{n:,} {what}"


def quality_note_lines(counts: pd.DataFrame, run_id: int) -> list[str]:
    """The data-quality notes, in words a marketer reads, from the quarantine's counts (source_table, scope, n).

    A "row" finding left the whole row out; a "field" finding ignored one value and used the rest of the row.
    """
    if counts.empty:
        return []
    total = int(counts["n"].sum())
    them = "it" if total == 1 else "them"
    lines = [
        f"{DATA_QUALITY_NOTE}{total:,} entr{'y' if total == 1 else 'ies'} in your data had a problem (such as an "
        f"impossible amount, an unknown customer or an unreadable yes/no), so this run set {them} aside; "
        f"`winback quality --run-id {run_id}` lists each one."
    ]
    for row in counts.itertuples(index=False):
        n, table = int(row.n), str(row.source_table)
        if row.scope == "row":
            lines.append(f"{DATA_QUALITY_NOTE}{_rows(table, n)} set aside: not used at all.")
        else:
            values = "1 value" if n == 1 else f"{n:,} values"
            lines.append(
                f"{DATA_QUALITY_NOTE}{values} in {_rows(table)} ignored as unreadable; the rest of each row was used."
            )
    return lines


def headline_markdown(report: ReportData) -> str:
    """The report's headline as Markdown: what a reviewer reads first in the Prefect UI."""
    row = report.overall.iloc[0]
    pct = "{:.1%}".format
    status = window_status(report)
    lines = [
        f"# {report.title}",
        "",
        *([f"> ⚠ **{status}**", ""] if status else []),
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
