"""Lapsed segment: own buying rhythm, overdue ratio, the days window and the p_active band."""

from __future__ import annotations

import pandas as pd
import pytest

from winback.config import LapsedRule
from winback.segments.lapsed import lapsed_segment, own_mean_gap


def _rfm(rows: list[tuple[str, int, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "frequency", "recency", "days_since_last", "p_active"])


# --------------------------------------------------------------------------- own_mean_gap


def test_own_mean_gap_repeat_buyers_and_median_for_one_timers() -> None:
    # repeat gaps: 60/2 = 30, 90/1 = 90, 40/4 = 10 -> median 30 for the two one-time buyers
    rfm = _rfm(
        [
            ("a", 2, 60.0, 0.0, 0.5),
            ("b", 1, 90.0, 0.0, 0.5),
            ("c", 4, 40.0, 0.0, 0.5),
            ("d", 0, 0.0, 0.0, 0.5),
            ("e", 0, 0.0, 0.0, 0.5),
        ]
    )
    assert own_mean_gap(rfm).tolist() == pytest.approx([30.0, 90.0, 10.0, 30.0, 30.0])


def test_own_mean_gap_median_of_even_count_is_midpoint() -> None:
    # repeat gaps 20 and 50 -> median 35
    rfm = _rfm([("a", 1, 20.0, 0, 0.5), ("b", 2, 100.0, 0, 0.5), ("c", 0, 0.0, 0, 0.5)])
    assert own_mean_gap(rfm).tolist() == pytest.approx([20.0, 50.0, 35.0])


def test_own_mean_gap_all_one_time_buyers_fall_back_to_90_days() -> None:
    rfm = _rfm([("a", 0, 0.0, 10, 0.5), ("b", 0, 0.0, 20, 0.5)])
    assert own_mean_gap(rfm).tolist() == [90.0, 90.0]


def test_own_mean_gap_is_at_least_one_day() -> None:
    # 2 / 4 = 0.5 days between orders -> clipped to 1; the one-timer's median fallback (0.5) as well
    rfm = _rfm([("a", 4, 2.0, 0, 0.5), ("b", 0, 0.0, 0, 0.5)])
    assert own_mean_gap(rfm).tolist() == [1.0, 1.0]


def test_own_mean_gap_keeps_the_frame_index() -> None:
    rfm = _rfm([("a", 2, 60.0, 0, 0.5), ("b", 0, 0.0, 0, 0.5)]).set_axis([10, 20])
    gap = own_mean_gap(rfm)
    assert gap.index.tolist() == [10, 20]
    assert gap.loc[20] == 30.0


# --------------------------------------------------------------------------- lapsed_segment


def test_lapsed_segment_picks_overdue_and_fading_customers() -> None:
    rfm = _rfm(
        [
            ("overdue", 2, 60.0, 75.0, 0.9),  # gap 30, 75/30 = 2.5x, p_active high
            ("fading", 1, 90.0, 100.0, 0.5),  # gap 90, 1.11x, but p_active 0.5 < 0.6
            ("too_recent", 4, 40.0, 12.0, 0.1),  # gap 10, 1.2x; 12 days < 30 minimum
            ("one_timer", 0, 0.0, 50.0, 0.9),  # measured against the median gap, see below
            ("on_rhythm", 2, 120.0, 70.0, 0.8),  # gap 60, 70/60 = 1.17x, p_active high
        ]
    )
    # repeat gaps: 30, 90, 10, 60 -> median 45; the one-timer: 50 / 45 = 1.11x, p_active 0.9 -> not lapsed
    out = lapsed_segment(rfm, LapsedRule())
    assert out["customer_id"].tolist() == ["overdue", "fading"]
    assert out["overdue_ratio"].tolist() == pytest.approx([2.5, 100.0 / 90.0])
    assert out["lapsed_because"].tolist() == ["overdue 2.5x own gap", "p_active 0.5"]


def test_lapsed_segment_one_timer_measured_against_population_median() -> None:
    rfm = _rfm(
        [
            ("r1", 1, 20.0, 5.0, 0.9),  # gap 20
            ("r2", 1, 40.0, 5.0, 0.9),  # gap 40
            ("new", 0, 0.0, 45.0, 0.9),  # median gap 30: 45/30 = 1.5x = overdue_factor exactly
        ]
    )
    out = lapsed_segment(rfm, LapsedRule())
    assert out["customer_id"].tolist() == ["new"]
    assert out["overdue_ratio"].iloc[0] == pytest.approx(1.5)
    assert out["lapsed_because"].iloc[0] == "overdue 1.5x own gap"


@pytest.mark.parametrize(
    ("days_since_last", "picked"),
    [(29.0, False), (30.0, True), (540.0, True), (541.0, False)],
    ids=["below-min", "at-min", "at-max", "beyond-max"],
)
def test_lapsed_window_is_inclusive(days_since_last: float, picked: bool) -> None:
    # gap 1 day: hugely overdue, so only the window decides
    rfm = _rfm([("a", 5, 5.0, days_since_last, 0.9)])
    assert (len(lapsed_segment(rfm, LapsedRule())) == 1) is picked


def test_lapsed_window_follows_the_rule() -> None:
    rfm = _rfm([("a", 5, 5.0, 45.0, 0.9), ("b", 5, 5.0, 80.0, 0.9), ("c", 5, 5.0, 120.0, 0.9)])
    out = lapsed_segment(rfm, LapsedRule(min_days_since_last=60, max_days_since_last=100))
    assert out["customer_id"].tolist() == ["b"]


@pytest.mark.parametrize(
    ("p_active", "because"),
    [
        (0.019, None),
        (0.02, "p_active 0.02"),
        (0.3, "p_active 0.3"),
        (0.594, "p_active 0.59"),
        (0.6, None),
        (0.95, None),
    ],
    ids=["below-min", "at-min", "middle", "just-below-max", "at-max", "active"],
)
def test_p_active_band_is_half_open(p_active: float, because: str | None) -> None:
    # gap 100 days, 60 days since last: 0.6x, not overdue, so only p_active decides
    rfm = _rfm([("a", 2, 200.0, 60.0, p_active)])
    out = lapsed_segment(rfm, LapsedRule())
    assert out["lapsed_because"].tolist() == ([because] if because else [])


def test_overdue_factor_from_the_rule() -> None:
    # gap 20: 50 days is 2.5x -> lapsed at factor 2, not at factor 3
    rfm = _rfm([("a", 3, 60.0, 50.0, 0.9)])
    assert len(lapsed_segment(rfm, LapsedRule(overdue_factor=2.0))) == 1
    assert lapsed_segment(rfm, LapsedRule(overdue_factor=3.0)).empty


def test_overdue_reason_wins_over_p_active() -> None:
    rfm = _rfm([("a", 2, 60.0, 90.0, 0.1)])  # 3.0x overdue and fading
    out = lapsed_segment(rfm, LapsedRule())
    assert out["lapsed_because"].iloc[0] == "overdue 3.0x own gap"


def test_lapsed_segment_keeps_other_columns_and_index() -> None:
    rfm = _rfm([("a", 2, 60.0, 90.0, 0.9), ("b", 2, 60.0, 10.0, 0.9)]).set_axis([7, 8])
    rfm["mean_spend"] = [12.5, 99.0]
    out = lapsed_segment(rfm, LapsedRule())
    assert out.index.tolist() == [7]
    assert out["mean_spend"].tolist() == [12.5]


def test_lapsed_segment_missing_columns_named() -> None:
    rfm = _rfm([("a", 2, 60.0, 90.0, 0.9)]).drop(columns=["days_since_last", "p_active"])
    with pytest.raises(ValueError, match=r"required columns missing: days_since_last, p_active"):
        lapsed_segment(rfm, LapsedRule())
