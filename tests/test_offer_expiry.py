"""A code is valid to the end of the date its messages print, wherever the customer is."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, select

from winback.messages.render import Brand, build_context
from winback.offers.exchange import RedemptionImportError, import_redemptions
from winback.offers.issue import (
    expiry_for,
    extend_expiry,
    issue_offers,
    offer_amounts,
    offers_for_run,
)
from winback.warehouse.models import Offer
from winback.warehouse.timeutil import day_end, expiry_day, utc

EVENING_RUN = dt.datetime(2026, 11, 2, 20, 30, tzinfo=dt.UTC)
END_OF_2_DEC = dt.datetime(2026, 12, 3, 11, 59, 59, 999999, tzinfo=dt.UTC)  # midnight in UTC-12
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def test_a_code_lasts_to_the_end_of_its_day_in_the_last_time_zone() -> None:
    """(Was a bug: it expired at the run's time of day, 2 Dec 20:30 UTC, while messages said "until 2 Dec".)"""
    assert expiry_for(EVENING_RUN, 30) == END_OF_2_DEC
    assert expiry_for(AS_OF, 30) == END_OF_2_DEC  # any time of 2 Nov (UTC): the same last day
    assert expiry_day(END_OF_2_DEC) == dt.date(2026, 12, 2)
    assert expiry_day(END_OF_2_DEC + dt.timedelta(microseconds=1)) == dt.date(2026, 12, 3)
    assert day_end(dt.date(2026, 12, 2)) == dt.datetime(2026, 12, 2, 23, 59, 59, 999999, tzinfo=ZoneInfo("Etc/GMT+12"))


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Europe/London", "America/Los_Angeles", "Pacific/Pago_Pago"])
def test_the_printed_day_is_valid_to_its_last_minute_everywhere(zone: str) -> None:
    last_minute = dt.datetime(2026, 12, 2, 23, 59, tzinfo=ZoneInfo(zone))
    assert utc(last_minute) <= expiry_for(EVENING_RUN, 30)


def test_naive_times_are_utc_as_sqlite_returns_them() -> None:
    assert expiry_day(END_OF_2_DEC.replace(tzinfo=None)) == dt.date(2026, 12, 2)
    assert expiry_day(pd.Timestamp(END_OF_2_DEC)) == dt.date(2026, 12, 2)


@pytest.fixture
def run_id(engine: Engine) -> int:
    with engine.begin() as conn:
        return insert_run(conn, "c", EVENING_RUN)


def issue_one(engine: Engine, run_id: int) -> str:
    """A 30-day code for customer C1, issued by a run at 20:30 UTC; returns the code."""
    offer = pd.DataFrame(
        {"customer_id": ["C1"], "offer_kind": ["store_credit"], "offer_value": [15.0], "offer_cost": [5.25]}
    )
    with engine.begin() as conn:
        issue_offers(conn, run_id, EVENING_RUN, offer, "USD", 30)
        return conn.execute(select(Offer.code)).scalar_one()


def test_the_message_and_the_code_agree_for_a_los_angeles_customer(engine: Engine, run_id: int) -> None:
    """(Was a bug: the SMS said "until Dec 2, 2026"; a redemption on Dec 2 at 18:00 PST was refused.)"""
    code = issue_one(engine, run_id)
    with engine.connect() as conn:
        row = offers_for_run(conn, run_id).iloc[0].to_dict()
    ctx = build_context({**row, "locale": "en_US"}, Brand(), "https://example.test/u")
    assert ctx["offer"]["expires_on"] == "Dec 2, 2026"
    evening = dt.datetime(2026, 12, 2, 18, 0, tzinfo=LOS_ANGELES).isoformat()
    with engine.begin() as conn:
        done = import_redemptions(conn, [{"code": code, "order_id": "O-LA", "redeemed_at": evening}])
    assert done == {"redeemed": 1, "already_recorded": 0}


def test_a_redemption_once_the_day_is_over_everywhere_is_refused(engine: Engine, run_id: int) -> None:
    code = issue_one(engine, run_id)
    too_late = (END_OF_2_DEC + dt.timedelta(seconds=1)).isoformat()
    with engine.begin() as conn, pytest.raises(RedemptionImportError, match=f"code {code} was not valid at"):
        import_redemptions(conn, [{"code": code, "order_id": "O-1", "redeemed_at": too_late}])


def test_an_expiry_is_extended_but_never_shortened(engine: Engine, run_id: int) -> None:
    issue_one(engine, run_id)
    later = day_end(dt.date(2027, 1, 15))
    with engine.begin() as conn:
        assert not extend_expiry(conn, run_id, "C1", day_end(dt.date(2026, 11, 20)))
        assert extend_expiry(conn, run_id, "C1", later)
        assert not extend_expiry(conn, run_id, "C1", later)  # already so: nothing to do
        assert not extend_expiry(conn, run_id, "C2", day_end(dt.date(2027, 6, 1)))  # no code: nothing made up
        stored = conn.execute(select(Offer.expires_at)).scalar_one()
    assert utc(stored) == later


def test_a_refund_is_worth_its_decided_cost_other_offers_their_value() -> None:
    kinds = pd.Series(["refund_share", "store_credit", "percent_discount", "free_shipping"])
    values = pd.Series([20.0, 15.0, 10.0, 0.0])
    costs = pd.Series([0.31, 5.25, 1.2, 1.73])
    assert offer_amounts(kinds, values, costs).tolist() == [0.31, 15.0, 10.0, 0.0]
