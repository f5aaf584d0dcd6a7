"""What a report covers: the window its returns were tracked over, as far as tracking has seen it.

The weekly report runs Mondays 07:00, the campaign Mondays 09:00 and tracking daily 06:30, so the latest
run is always a week into its 30-day window. These tests build small runs by hand (wb_ rows plus the
demo's source tables, empty unless a test needs them) and check the period, the curve, the "window open"
banner, which run a report picks by default, and the root causes' offer cost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Connection, Engine, insert

from winback.config import CampaignConfig
from winback.flows.report import assemble
from winback.reports.build import TrackedWindow, build_report, choose_report_run, headline_markdown
from winback.reports.formatting import fmt_days
from winback.reports.html import render_html_report
from winback.warehouse.models import Campaign, Decision, Offer, Return
from winback.warehouse.returns import measured_customers
from winback.warehouse.source import SourceMapping, SourceTables
from winback.warehouse.source_models import SourceBase

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
SRC = SourceTables(SourceMapping())
CONFIG = CampaignConfig(campaign_id="weekly")


@dataclass(frozen=True)
class Customer:
    customer_id: str
    arm: str
    returned_after: float | None = None  # days after the run's as-of
    segment: str = "lapsed"
    failure_category: str | None = None
    offer: tuple[str, str] | None = None  # (kind, value)
    redeemed_on: float | None = None  # the returning order used the coupon (needs returned_after)


WEEK_ONE = [  # returns by day 7 of a 30-day window: treated 3 of 5, holdout 1 of 3
    Customer("T1", "treatment", 1.0),
    Customer("T2", "treatment", 3.0),
    Customer("T3", "treatment", 6.5),
    Customer("T4", "treatment"),
    Customer("T5", "treatment"),
    Customer("H1", "holdout", 2.0),
    Customer("H2", "holdout"),
    Customer("H3", "holdout"),
]


@pytest.fixture
def db(engine: Engine) -> Engine:
    """winback's tables plus the (empty) source tables the report reads: orders, service failures."""
    SourceBase.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Campaign).values(id="weekly", kind="winback", config={}, created_at=AS_OF - 400 * DAY))
    return engine


def add_run(
    conn: Connection,
    as_of: dt.datetime,
    *,
    tracked_at: dt.datetime | None,
    window_days: int = 30,
    customers: list[Customer] = WEEK_ONE,
) -> int:
    """A decided run of `weekly`; with `tracked_at`, its wb_returns rows as `winback track` writes them."""
    run_id = insert_run(conn, "weekly", as_of)
    for c in customers:
        _add_customer(conn, run_id, as_of, c, window_days, tracked_at)
    return run_id


def _add_customer(
    conn: Connection, run_id: int, as_of: dt.datetime, c: Customer, window_days: int, tracked_at: dt.datetime | None
) -> None:
    kind = c.offer[0] if c.offer else None
    conn.execute(insert(Decision).values(
        run_id=run_id, customer_id=c.customer_id, segment=c.segment, action="contact", arm=c.arm, offer_kind=kind,
        failure_category=c.failure_category, channel="email", reason="test", decided_at=as_of,
    ))  # fmt: skip
    returned_at = None if c.returned_after is None else as_of + c.returned_after * DAY
    order_id = f"R{run_id}-{c.customer_id}"
    code = f"WB{run_id}{c.customer_id}"
    if returned_at is not None:
        conn.execute(insert(SourceBase.metadata.tables["orders"]).values(
            order_id=order_id, customer_id=c.customer_id, ordered_at=returned_at, amount=Decimal("80.00"),
            coupon_code=code if c.redeemed_on is not None else None,
        ))  # fmt: skip
    if c.offer:
        redeemed = c.redeemed_on is not None
        conn.execute(insert(Offer).values(
            code=code, run_id=run_id, customer_id=c.customer_id, kind=c.offer[0], value=Decimal(c.offer[1]),
            currency="EUR", expected_cost=Decimal("1.00"), issued_at=as_of, expires_at=as_of + 30 * DAY,
            redeemed_at=as_of + c.redeemed_on * DAY if redeemed else None,
            redeemed_order_id=order_id if redeemed else None,
        ))  # fmt: skip
    if tracked_at is not None:
        conn.execute(insert(Return).values(
            run_id=run_id, customer_id=c.customer_id, arm=c.arm, returned=returned_at is not None,
            first_return_at=returned_at, orders=int(returned_at is not None),
            revenue=Decimal("80.00") if returned_at is not None else Decimal("0.00"),
            redeemed=c.redeemed_on is not None, window_days=window_days, tracked_at=tracked_at,
        ))  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Period, curve and banner follow the tracking


def test_a_run_tracked_a_week_in_is_reported_as_a_week_with_the_window_open(db: Engine) -> None:
    with db.begin() as conn:
        run = add_run(conn, AS_OF, tracked_at=AS_OF + 7 * DAY)
        report = build_report(conn, SRC, run, CONFIG)
    assert report.period_start == AS_OF.date()
    assert report.period_end == (AS_OF + 7 * DAY).date()  # not the window's end, 2026-12-02
    assert (report.window_days, report.observed_days) == (30, 7)
    # the curve stops at the last tracking instead of running flat to day 30, and ends at the headline rate
    assert report.retention["day"].max() == 7
    last = report.retention[report.retention["day"] == 7].set_index("arm")["share"]
    assert last["treatment"] == pytest.approx(report.overall.iloc[0]["rate_treated"]) == pytest.approx(3 / 5)
    markdown = headline_markdown(report)
    assert "Window open: 7 of 30 days observed" in markdown.split("Period")[0]  # said before any number
    assert f"Period {AS_OF.date()} → {(AS_OF + 7 * DAY).date()}." in markdown
    assert 'id="headline-window"' in render_html_report(report)


def test_on_the_weekly_schedule_the_curve_still_ends_at_the_headline_rate(db: Engine) -> None:
    """Tracked next Monday 06:30: 6.85 days in. T3 came back on day 6.5, so the curve runs to day 7."""
    tracked_at = AS_OF + 7 * DAY - dt.timedelta(hours=3, minutes=30)
    with db.begin() as conn:
        run = add_run(conn, AS_OF, tracked_at=tracked_at)
        report = build_report(conn, SRC, run, CONFIG)
    assert report.period_end == tracked_at.date()
    assert report.retention["day"].max() == 7
    last = report.retention[report.retention["day"] == 7].set_index("arm")["share"]
    row = report.overall.iloc[0]
    assert (last["treatment"], last["holdout"]) == pytest.approx((row["rate_treated"], row["rate_holdout"]))
    assert "Window open: 6.8 of 30 days observed" in headline_markdown(report)


def test_the_window_is_the_tracked_one_not_the_configured_attribution_days(db: Engine) -> None:
    """Tracked over 30 days (the daily deployment's window) while the config says 14: the report says 30."""
    with db.begin() as conn:
        run = add_run(conn, AS_OF, tracked_at=AS_OF + 31 * DAY, window_days=30)
        report = build_report(conn, SRC, run, CampaignConfig(campaign_id="weekly", attribution_days=14))
    assert report.period_end == (AS_OF + 30 * DAY).date()
    assert (report.window_days, report.observed_days) == (30, 30)
    assert report.retention["day"].max() == 30
    assert "Window open" not in headline_markdown(report)
    assert "within 30 days after the run" in render_html_report(report)


def test_observed_days_stop_at_the_window() -> None:
    monday_9 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    next_monday_0630 = monday_9 + dt.timedelta(days=6, hours=21, minutes=30)
    early = TrackedWindow(monday_9, 30, next_monday_0630)
    assert (early.closed, early.observed_until, early.curve_days) == (False, next_monday_0630, 7)
    assert early.observed_days == pytest.approx(6 + 21.5 / 24)
    late = TrackedWindow(monday_9, 30, monday_9 + 37 * DAY)
    assert (late.observed_days, late.curve_days, late.closed) == (30, 30, True)
    assert late.observed_until == monday_9 + 30 * DAY
    assert TrackedWindow(monday_9, 30, monday_9 + 30 * DAY).closed  # tracked the moment it closed
    assert TrackedWindow(monday_9, 30, monday_9 - DAY).observed_days == 0  # a clock behind the run
    assert fmt_days(29.97) == "29.9" and fmt_days(7.0) == "7"  # never "30 of 30" while still open


# --------------------------------------------------------------------------------------------------
# Which run a report shows by default


def weekly_runs(conn: Connection, report_at: dt.datetime) -> dict[int, int]:
    """Five Monday runs tracked daily (06:30) up to the report (Monday 07:00); weeks back → run id."""
    tracked_at = report_at - dt.timedelta(minutes=30)
    return {
        weeks: add_run(conn, report_at - weeks * 7 * DAY + 2 * HOUR, tracked_at=tracked_at) for weeks in (5, 4, 3, 2, 1)
    }


def test_default_run_is_the_latest_whose_window_closed_and_was_tracked_since(db: Engine) -> None:
    report_at = dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC)
    with db.begin() as conn:
        runs = weekly_runs(conn, report_at)
        choice = choose_report_run(conn, "weekly")
    assert choice.run_id == runs[5]  # 34 days and 22 hours in: the only closed window
    (note,) = choice.notes
    assert f"Run {runs[5]} " in note and "4 newer runs are still inside the window" in note


def test_a_window_over_by_the_clock_but_not_tracked_since_is_not_closed(db: Engine) -> None:
    """Last tracked on day 29, then never again: a day of returns is missing, so an older run wins."""
    with db.begin() as conn:
        older = add_run(conn, AS_OF - 60 * DAY, tracked_at=AS_OF - 29 * DAY)  # tracked on day 31
        add_run(conn, AS_OF - 40 * DAY, tracked_at=AS_OF - 11 * DAY)  # tracked on day 29 only
        add_run(conn, AS_OF - 7 * DAY, tracked_at=AS_OF)
        assert choose_report_run(conn, "weekly").run_id == older


def test_without_a_closed_window_the_latest_tracked_run_is_shown_with_a_note(db: Engine) -> None:
    with db.begin() as conn:
        add_run(conn, AS_OF - 40 * DAY, tracked_at=AS_OF - 11 * DAY)  # day 29
        latest = add_run(conn, AS_OF - 7 * DAY, tracked_at=AS_OF)
        add_run(conn, AS_OF, tracked_at=None)  # decided this morning, not tracked yet
        choice = choose_report_run(conn, "weekly")
    assert choice.run_id == latest
    (note,) = choice.notes
    assert note.startswith("No run of weekly has been tracked after its attribution window closed yet")
    assert "partial" in note


def test_nothing_tracked_yet_names_the_latest_run_and_the_report_says_why(db: Engine) -> None:
    with db.begin() as conn:
        run = add_run(conn, AS_OF, tracked_at=None)
        assert choose_report_run(conn, "weekly").run_id == run
        with pytest.raises(ValueError, match="no tracked returns yet"):
            build_report(conn, SRC, run, CONFIG)


def test_the_flow_reports_the_closed_run_by_default_and_a_named_run_as_asked(db: Engine) -> None:
    report_at = dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC)
    with db.begin() as conn:
        runs = weekly_runs(conn, report_at)
    url = db.url.render_as_string(hide_password=False)
    default = assemble.fn(url, SRC, None, CONFIG, ["analyst's note"])
    assert default.observed_days == default.window_days == 30
    assert default.period_start == (report_at - 35 * DAY).date()
    assert len(default.notes) == 2 and default.notes[1] == "analyst's note"
    named = assemble.fn(url, SRC, runs[1], CONFIG, [])  # --run-id: that run, early numbers and all
    assert named.notes == [] and named.observed_days == pytest.approx(6 + 21.5 / 24)
    assert named.period_start == (report_at - 7 * DAY).date()
    assert headline_markdown(named).count("Window open: 6.8 of 30 days observed") == 1


# --------------------------------------------------------------------------------------------------
# Root causes: what the offers cost, not their face values added up


def test_root_cause_offer_cost_is_the_measured_cost_per_customer(db: Engine) -> None:
    """Free shipping costs the shipping it waives and 10 % off an 80.00 order is money, not 10 'points'."""
    aggrieved = [
        Customer("A1", "treatment", 2.0, "aggrieved", "late_delivery", ("free_shipping", "0.00"), redeemed_on=2.0),
        Customer("A2", "treatment", 3.0, "aggrieved", "damaged_item", ("store_credit", "10.00"), redeemed_on=3.0),
        Customer("A3", "treatment", 4.0, "aggrieved", "damaged_item", ("percent_discount", "10.00"), redeemed_on=4.0),
        Customer("A4", "treatment", None, "aggrieved", "damaged_item", ("store_credit", "15.00")),
        Customer("A5", "holdout", 5.0, "aggrieved", "damaged_item"),
    ]
    failures = SourceBase.metadata.tables["service_failures"]
    with db.begin() as conn:
        run = add_run(conn, AS_OF, tracked_at=AS_OF + 31 * DAY, customers=aggrieved)
        conn.execute(insert(failures), [
            {"failure_id": f"F{c.customer_id}", "customer_id": c.customer_id, "category": c.failure_category,
             "severity": 3, "occurred_at": AS_OF - 10 * DAY, "resolved_at": None}
            for c in aggrieved
        ])  # fmt: skip
        report = build_report(conn, SRC, run, CONFIG)
        measured = measured_customers(conn, run, {"email": 0.0}, 0.3, 4.95, src=SRC)
    assert report.root_causes is not None
    causes = report.root_causes.set_index("failure_category")
    assert "compensation_cost" not in causes.columns
    treated = measured[(measured["segment"] == "aggrieved") & (measured["arm"] == "treatment")]
    expected = treated.groupby("failure_category")["offer_cost"].sum()
    assert causes["offer_cost"].to_dict() == pytest.approx(expected.to_dict())
    assert causes.loc["late_delivery", "offer_cost"] == pytest.approx(4.95)  # was 0.00: free shipping's value
    assert causes.loc["damaged_item", "offer_cost"] < 20.0  # not 10.00 credit + "10" percent
    assert causes.loc["damaged_item", "offer_cost"] > 10.0  # the credit plus a real discount
    assert causes["volume"].to_dict() == {"damaged_item": 4, "late_delivery": 1}
    assert causes.loc["damaged_item", "recovery_rate"] == pytest.approx(2 / 3, abs=1e-4)  # treated only
    html = render_html_report(report)
    assert 'data-col="offer_cost"' in html and ">Offer cost<" in html
    assert pd.notna(causes["resolved_share"]).all()
