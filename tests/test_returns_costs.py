"""What a run's offers cost, which order redeemed a code, and which runs the lift priors may learn from."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Connection, Engine, func, insert, select

from winback.warehouse.models import Campaign, Decision, Offer, Return
from winback.warehouse.returns import measured_customers, measured_lift_by_offer_kind, redeem_offers, track_run
from winback.warehouse.source import SourceMapping, SourceTables
from winback.warehouse.source_models import DemoOrder, SourceBase
from winback.warehouse.timeutil import utc

SRC = SourceTables(SourceMapping())
DAY = dt.timedelta(days=1)


@pytest.fixture
def warehouse(engine: Engine) -> Engine:
    """`engine` with the (empty) demo source tables and one campaign, "c"."""
    SourceBase.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Campaign).values(id="c", kind="winback", config={}, created_at=AS_OF))
    return engine


def decide(conn: Connection, run_id: int, customer_id: str, arm: str, offer_kind: str) -> None:
    conn.execute(insert(Decision).values(
        run_id=run_id, customer_id=customer_id, segment="aggrieved", action="contact" if arm == "treatment" else arm,
        arm=arm, offer_kind=offer_kind, channel="email", reason="test", decided_at=AS_OF,
    ))  # fmt: skip


def offer(conn: Connection, run_id: int, customer_id: str, kind: str, value: str, expected_cost: str) -> str:
    code = f"WB-{run_id}-{customer_id}"
    conn.execute(insert(Offer).values(
        code=code, run_id=run_id, customer_id=customer_id, kind=kind, value=Decimal(value), currency="EUR",
        expected_cost=Decimal(expected_cost), issued_at=AS_OF, expires_at=AS_OF + 30 * DAY,
    ))  # fmt: skip
    return code


def order(conn: Connection, order_id: str, customer_id: str, day: float, amount: str, code: str | None = None) -> None:
    conn.execute(insert(DemoOrder).values(
        order_id=order_id, customer_id=customer_id, ordered_at=AS_OF + day * DAY, amount=Decimal(amount),
        coupon_code=code,
    ))  # fmt: skip


def test_the_earliest_order_redeems_the_code_with_its_own_id(warehouse: Engine) -> None:
    """Z-9 (Nov 4) came first; A-1 (Nov 20) has the smaller id but must not be paired with Z-9's time."""
    with warehouse.begin() as conn:
        run = insert_run(conn)
        code = offer(conn, run, "C1", "percent_discount", "10.00", "1.00")
        order(conn, "A-1", "C1", 18, "90.00", code)
        order(conn, "Z-9", "C1", 2, "20.00", code)
        assert redeem_offers(conn, SRC, run) == 1
        when, order_id = conn.execute(select(Offer.redeemed_at, Offer.redeemed_order_id)).one()
    assert (order_id, utc(when)) == ("Z-9", AS_OF + 2 * DAY)


def test_offer_costs_follow_the_order_that_used_the_code_and_refunds_are_paid_outright(warehouse: Engine) -> None:
    with warehouse.begin() as conn:
        run = insert_run(conn)
        for cid, kind, value, expected in [
            ("PCT", "percent_discount", "10.00", "1.50"),  # code on a €20 order, then €500 without it
            ("LATE", "percent_discount", "10.00", "1.50"),  # €500 in the window, the code on day 10: after it
            ("REFUND", "refund_share", "20.00", "12.40"),  # paid, never came back
            ("REFUND2", "refund_share", "20.00", "12.40"),  # paid, came back with the code on €100
            ("CREDIT", "store_credit", "15.00", "4.50"),  # used on €40: its face value
        ]:
            decide(conn, run, cid, "treatment", kind)
            offer(conn, run, cid, kind, value, expected)
        decide(conn, run, "HOLD", "holdout", "refund_share")  # held out: no offer, no cost
        order(conn, "O-1", "PCT", 2, "20.00", f"WB-{run}-PCT")
        order(conn, "O-2", "PCT", 5, "500.00")
        order(conn, "O-3", "LATE", 3, "500.00")
        order(conn, "O-4", "LATE", 10, "20.00", f"WB-{run}-LATE")
        order(conn, "O-5", "REFUND2", 4, "100.00", f"WB-{run}-REFUND2")
        order(conn, "O-6", "CREDIT", 1, "40.00", f"WB-{run}-CREDIT")
        order(conn, "O-7", "HOLD", 1, "60.00")
        track_run(conn, SRC, run, window_days=7, now=AS_OF + 8 * DAY)
        frame = measured_customers(conn, run, {"email": 0.0}, 0.3, shipping_cost=4.95, src=SRC)
    cost = frame.set_index("customer_id")["offer_cost"].to_dict()
    assert cost == pytest.approx(
        {"PCT": 2.0, "LATE": 0.0, "REFUND": 12.4, "REFUND2": 12.4, "CREDIT": 15.0, "HOLD": 0.0}
    )


def returns_of_run(conn: Connection, as_of: dt.datetime, kind: str, window_days: int, tracked_at: dt.datetime) -> None:
    """A run of 10 treated customers who all returned and 10 held out who did not, tracked at `tracked_at`."""
    run = insert_run(conn, "c", as_of)
    for i in range(20):
        arm, returned = ("treatment", True) if i < 10 else ("holdout", False)
        decide(conn, run, f"C{i}", arm, kind)
        conn.execute(insert(Return).values(
            run_id=run, customer_id=f"C{i}", arm=arm, returned=returned, orders=int(returned), revenue=Decimal(0),
            first_return_at=as_of + DAY if returned else None, redeemed=False, window_days=window_days,
            tracked_at=tracked_at,
        ))  # fmt: skip


def test_lift_priors_learn_only_from_windows_closed_and_tracked_after_closing(warehouse: Engine) -> None:
    before = AS_OF + 60 * DAY
    with warehouse.begin() as conn:
        returns_of_run(conn, AS_OF, "store_credit", 30, AS_OF + 31 * DAY)  # closed, tracked after: learn
        returns_of_run(conn, before - 30 * DAY, "refund_share", 30, before)  # closes exactly at `before`: learn
        returns_of_run(conn, before - 10 * DAY, "free_service", 7, before - 2 * DAY)  # its own 7-day window: learn
        returns_of_run(conn, before - DAY, "percent_discount", 30, before - DAY / 2)  # still filling
        returns_of_run(conn, AS_OF + DAY, "free_shipping", 30, AS_OF + 5 * DAY)  # closed, but tracked on day 4
        returns_of_run(conn, before - 11 * DAY, "none", 30, before)  # a 30-day window: open for 19 more days
        evidence = measured_lift_by_offer_kind(conn, "c", before)
    assert sorted(evidence["offer_kind"]) == ["free_service", "refund_share", "store_credit"]
    assert (
        evidence[["n_treated", "returned_treated", "n_holdout", "returned_holdout"]].to_numpy().tolist()
        == [[10, 10, 10, 0]] * 3
    )


def test_tracking_counts_no_order_after_the_moment_it_tracks(demo_engine: Engine) -> None:
    """A window still open is observed up to `now`: the report's 'N of M days observed' must be true."""
    from test_campaign_path import run_campaign

    from winback.app.demo_data import simulate_campaign_response
    from winback.config import CampaignConfig
    from winback.warehouse.models import Return

    run = run_campaign(demo_engine, CampaignConfig(campaign_id="partial", budget=2000.0, holdout_share=0.2))
    simulate_campaign_response(demo_engine, run.run_id, window_days=30, true_lift=0.05, seed=4)
    week = AS_OF + 7 * DAY
    with demo_engine.begin() as conn:
        track_run(conn, SRC, run.run_id, 30, now=week)
        first = conn.execute(select(Return.first_return_at).where(Return.returned)).scalars().all()
        track_run(conn, SRC, run.run_id, 30, now=AS_OF + 31 * DAY)
        full = conn.execute(select(func.count()).where(Return.returned)).scalar_one()
    assert 0 < len(first) < full
    assert max(utc(t) for t in first) <= week
