"""Tests for reports.stats and reports.retention.

Reference values are published (Newcombe 1998) or derived by hand in the comments; simulations have a
known true effect and fixed seeds, so they are deterministic, and their tolerances are wide enough in
binomial standard errors that a different seed would pass too.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from winback.reports.retention import RETENTION_COLUMNS, retention_curve
from winback.reports.stats import (
    LIFT_COLUMNS,
    katz_log_rr,
    lift_table,
    mean_difference,
    minimum_detectable_effect,
    newcombe_interval,
    proportion_lift,
    welch_interval,
    wilson_interval,
)

# --------------------------------------------------------------------------------------------------
# Published and hand-derived values

# Newcombe RG (1998) Stat Med 17:873-890, Table II, method 10 (hybrid score), 95 % limits.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]

# Newcombe RG (1998) Stat Med 17:857-872, Table I, method 3 (Wilson score without continuity correction).
WILSON_PUBLISHED = [
    ((81, 263), (0.2553, 0.3662)),
    ((15, 148), (0.0624, 0.1605)),
    ((0, 20), (0.0000, 0.1611)),
    ((1, 29), (0.0061, 0.1718)),
]


@pytest.mark.parametrize(("counts", "limits"), NEWCOMBE_TABLE_II)
def test_newcombe_matches_published_table(counts: tuple[int, int, int, int], limits: tuple[float, float]) -> None:
    low, high = newcombe_interval(*counts)
    assert float(low) == pytest.approx(limits[0], abs=6e-5)
    assert float(high) == pytest.approx(limits[1], abs=6e-5)


@pytest.mark.parametrize(("counts", "limits"), WILSON_PUBLISHED)
def test_wilson_matches_published_table(counts: tuple[int, int], limits: tuple[float, float]) -> None:
    low, high = wilson_interval(*counts)
    assert float(low) == pytest.approx(limits[0], abs=6e-5)
    assert float(high) == pytest.approx(limits[1], abs=6e-5)


def test_proportion_lift_worked_example() -> None:
    est = proportion_lift(56, 70, 48, 80)
    assert est.rate_treated == pytest.approx(0.8)
    assert est.rate_holdout == pytest.approx(0.6)
    assert est.abs_lift == pytest.approx(0.2)
    assert (est.abs_lift_low, est.abs_lift_high) == pytest.approx((0.0524, 0.3339), abs=6e-5)
    # Katz by hand: RR = 0.8 / 0.6 = 1.333333; se² = 1/56 − 1/70 + 1/48 − 1/80 = 0.0119048,
    # se = 0.109109, 1.959964·se = 0.213851; RR·exp(∓0.213851) = 1.076623, 1.651255.
    assert est.rel_lift == pytest.approx(1 / 3)
    assert est.rel_lift_low == pytest.approx(0.076623, abs=2e-5)
    assert est.rel_lift_high == pytest.approx(0.651255, abs=2e-5)


def test_katz_zero_cell_continuity_correction() -> None:
    # 5/56 vs 0/29 has a zero cell, so 0.5 is added to every cell: 5.5/57 vs 0.5/30.
    # RR = 0.0964912 / 0.0166667 = 5.789474; se² = 1/5.5 − 1/57 + 1/0.5 − 1/30 = 2.130941, se = 1.459774,
    # 1.959964·se = 2.861099, exp = 17.48166; limits 5.789474 / 17.48166 = 0.33117 and × = 101.2078.
    rr, low, high = katz_log_rr(5, 56, 0, 29)
    assert float(rr) == pytest.approx(5.789474, rel=1e-5)
    assert float(low) == pytest.approx(0.33117, rel=1e-3)
    assert float(high) == pytest.approx(101.2078, rel=1e-3)
    est = proportion_lift(0, 40, 0, 40)  # both arms without returners: finite, centred on RR = 1
    assert math.isfinite(est.rel_lift_low) and math.isfinite(est.rel_lift_high)
    assert est.rel_lift == pytest.approx(0.0)
    assert est.rel_lift_low < 0 < est.rel_lift_high


def test_welch_small_hand_example_and_scipy() -> None:
    treated = np.array([0.0, 0.0, 10.0, 30.0])  # mean 10, variance 600/3 = 200
    holdout = np.array([0.0, 0.0, 0.0, 20.0])  # mean 5, variance 300/3 = 100
    est = mean_difference(treated, holdout)
    assert est.diff == pytest.approx(5.0)
    assert est.se == pytest.approx(math.sqrt(200 / 4 + 100 / 4))  # √75
    # Welch–Satterthwaite: 75² / ((50² + 25²) / 3) = 5625 / 1041.67 = 5.4
    assert est.df == pytest.approx(5.4)
    ref = sps.ttest_ind(treated, holdout, equal_var=False).confidence_interval(0.95)
    assert (est.low, est.high) == pytest.approx((ref.low, ref.high))
    assert est.total_treated == 40.0 and est.total_holdout == 20.0
    assert est.incremental_total == pytest.approx(5.0 * 4)


def test_mean_difference_rejects_nan_and_handles_tiny_arms() -> None:
    with pytest.raises(ValueError, match="NaN"):
        mean_difference(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    est = mean_difference(np.array([3.0]), np.array([1.0, 2.0]))
    assert est.diff == pytest.approx(1.5)
    assert math.isnan(est.low) and math.isnan(est.high)


# --------------------------------------------------------------------------------------------------
# Coverage with a known true effect


def _covers(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


def test_interval_coverage_of_proportion_lift_by_simulation() -> None:
    # 20,000 replicated campaigns, 2,000 customers per arm, holdout rate 0.15, true lift +0.04.
    # Binomial standard error of a 95 % coverage estimate: √(0.95·0.05/20000) = 0.0015, so the
    # [0.93, 0.97] band is ±13 SE: deterministic with this seed and robust to any other.
    rng = np.random.default_rng(20240901)
    reps, n, p_h, lift = 20_000, 2_000, 0.15, 0.04
    x_t = rng.binomial(n, p_h + lift, size=reps)
    x_h = rng.binomial(n, p_h, size=reps)
    low, high = newcombe_interval(x_t, n, x_h, n)
    assert 0.93 <= _covers(low, high, lift) <= 0.97
    _, rr_low, rr_high = katz_log_rr(x_t, n, x_h, n)
    assert 0.93 <= _covers(rr_low - 1, rr_high - 1, (p_h + lift) / p_h - 1) <= 0.97
    # …and the intervals are informative: with +4 pp at n = 2,000 most of them exclude zero.
    assert np.mean(low > 0) > 0.8


def test_welch_coverage_for_zero_inflated_lognormal_revenue() -> None:
    # Revenue = 0 for non-returners, lognormal(μ=3.5, σ=1) spend for returners; return rates 0.19 vs
    # 0.15, so the true per-customer difference is 0.04·exp(3.5 + 0.5). 1,000 replicates → coverage
    # SE 0.0069; the band [0.93, 0.97] is ±2.9 SE.
    rng = np.random.default_rng(7)
    reps, n, mu, sigma = 1_000, 2_000, 3.5, 1.0

    def revenue(rate: float) -> np.ndarray:
        spend = rng.lognormal(mu, sigma, size=(reps, n))
        return np.where(rng.random((reps, n)) < rate, spend, 0.0)

    treated, holdout = revenue(0.19), revenue(0.15)
    truth = 0.04 * math.exp(mu + sigma**2 / 2)
    low, high, _, _ = welch_interval(
        treated.mean(axis=1),
        treated.var(axis=1, ddof=1),
        n,
        holdout.mean(axis=1),
        holdout.var(axis=1, ddof=1),
        n,
    )
    assert 0.93 <= _covers(low, high, truth) <= 0.97


def _exact_coverage(n1: int, n2: int, p1: float, p2: float, method) -> float:
    """Coverage summed over every possible outcome (no simulation): Σ P(x1)·P(x2)·[p1 − p2 ∈ CI]."""
    x1 = np.arange(n1 + 1)[:, None]
    x2 = np.arange(n2 + 1)[None, :]
    low, high = method(x1, n1, x2, n2)
    weight = sps.binom.pmf(x1, n1, p1) * sps.binom.pmf(x2, n2, p2)
    d = p1 - p2
    return float((weight * ((low <= d + 1e-12) & (d - 1e-12 <= high))).sum())


def _wald(x1, n1, x2, n2):
    p1, p2 = x1 / n1, x2 / n2
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2 - 1.96 * se, p1 - p2 + 1.96 * se


def test_newcombe_keeps_coverage_at_small_n_and_rare_rates_where_wald_fails() -> None:
    # The reason for choosing Newcombe over Wald (Newcombe 1998): at 30-60 customers per arm and return
    # rates of 1-20 % the Wald interval's exact coverage collapses, the hybrid score interval's does not.
    rates = [0.01, 0.03, 0.05, 0.1, 0.2]
    for n1, n2 in [(40, 40), (60, 30)]:
        newcombe = [_exact_coverage(n1, n2, a, b, newcombe_interval) for a in rates for b in rates]
        wald = [_exact_coverage(n1, n2, a, b, _wald) for a in rates for b in rates]
        assert min(newcombe) >= 0.93
        assert np.mean(newcombe) <= 0.985  # conservative near 0, but not uselessly wide
        assert min(wald) < 0.90  # the check above is able to fail


# --------------------------------------------------------------------------------------------------
# Power


def test_mde_matches_fleiss_sample_size_example() -> None:
    # Fleiss (no continuity correction), 10 % vs 15 %, α = 0.05 two-sided, power 0.80:
    # n = [1.95996·√(2·0.125·0.875) + 0.84162·√(0.15·0.85 + 0.10·0.90)]² / 0.05²
    #   = (0.91669 + 0.39251)² / 0.0025 = 685.6  →  686 per arm detects +5 pp (just).
    assert minimum_detectable_effect(686, 686, 0.10) == pytest.approx(0.05, abs=2e-4)
    assert minimum_detectable_effect(686, 686, 0.10) <= 0.05
    assert minimum_detectable_effect(685, 685, 0.10) >= 0.05


def test_mde_is_monotone_decreasing_in_group_size() -> None:
    sizes = [30, 50, 100, 200, 500, 1_000, 2_000, 5_000, 20_000]
    for rate in (0.0, 0.02, 0.15, 0.5):
        mdes = [minimum_detectable_effect(n, n, rate) for n in sizes]
        assert all(a > b for a, b in itertools.pairwise(mdes)), (rate, mdes)
        treated_only = [minimum_detectable_effect(n, 500, rate) for n in sizes]
        assert all(a > b for a, b in itertools.pairwise(treated_only))


def test_true_effect_equal_to_mde_is_detected_about_80_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    n_t, n_h, p_h = 1_500, 600, 0.12
    mde = minimum_detectable_effect(n_t, n_h, p_h)
    reps = 20_000  # power SE √(0.8·0.2/20000) = 0.0028
    low, high = newcombe_interval(rng.binomial(n_t, p_h + mde, reps), n_t, rng.binomial(n_h, p_h, reps), n_h)
    power = float(np.mean((low > 0) | (high < 0)))
    assert 0.76 <= power <= 0.84


def test_underpowered_warning_for_small_groups_and_not_for_large_ones() -> None:
    small = proportion_lift(8, 25, 5, 20)
    assert small.underpowered
    assert small.warning is not None and "fewer than 30" in small.warning
    assert small.mde > 0.02
    large = proportion_lift(3_400, 20_000, 3_000, 20_000)  # MDE ≈ 2.8·√(2·0.15·0.85/20000) ≈ 1 pp
    assert not large.underpowered and large.warning is None
    assert large.mde < 0.02
    mid = proportion_lift(340, 2_000, 300, 2_000)  # big enough groups, MDE ≈ 3.2 pp > 2 pp
    assert mid.underpowered and mid.warning is not None
    assert "minimum detectable" in mid.warning and "fewer than" not in mid.warning
    assert not proportion_lift(340, 2_000, 300, 2_000, min_effect=0.05).underpowered


def test_proportion_lift_validation_and_empty_arm() -> None:
    with pytest.raises(ValueError):
        proportion_lift(11, 10, 1, 10)
    with pytest.raises(ValueError):
        proportion_lift(-1, 10, 1, 10)
    with pytest.raises(ValueError):
        proportion_lift(1, 10, 1, 10, confidence=1.5)
    empty = proportion_lift(5, 50, 0, 0)
    assert math.isnan(empty.abs_lift) and math.isnan(empty.abs_lift_low) and math.isnan(empty.mde)
    assert empty.underpowered and "no holdout" in (empty.warning or "")


# --------------------------------------------------------------------------------------------------
# lift_table


def _customers() -> pd.DataFrame:
    # Segment a: treated 4 (3 returned), holdout 2 (1 returned). Segment b: treated 2 (0), holdout 2 (1).
    return pd.DataFrame(
        {
            "segment": ["a", "a", "a", "a", "a", "a", "b", "b", "b", "b"],
            "arm": ["treatment"] * 4 + ["holdout"] * 2 + ["treatment"] * 2 + ["holdout"] * 2,
            "returned": [True, True, True, False, True, False, False, False, True, False],
            "revenue": [10.0, 20.0, 30.0, 0.0, 40.0, 0.0, 0.0, 0.0, 8.0, 0.0],
            "margin": [4.0, 8.0, 12.0, 0.0, 16.0, 0.0, 0.0, 0.0, 3.0, 0.0],
            "offer_cost": [2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            "message_cost": [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.25, 0.25, 0.0, 0.0],
        }
    )


def test_lift_table_by_group_hand_computed() -> None:
    table = lift_table(_customers(), ["segment"])
    assert list(table.columns) == ["segment", *LIFT_COLUMNS]
    a = table.set_index("segment").loc["a"]
    assert (a["n_treated"], a["n_holdout"]) == (4, 2)
    assert a["rate_treated"] == pytest.approx(0.75) and a["rate_holdout"] == pytest.approx(0.5)
    assert a["abs_lift"] == pytest.approx(0.25)
    assert a["abs_lift_low"] < 0.25 < a["abs_lift_high"]
    # revenue per customer: treated 60/4 = 15, holdout 40/2 = 20 → −5; × 4 treated = −20
    assert a["incr_revenue_per_customer"] == pytest.approx(-5.0)
    assert a["incremental_revenue"] == pytest.approx(-20.0)
    # margin per customer: 24/4 = 6 vs 16/2 = 8 → −2 × 4 = −8; costs 6 + 2 = 8 → ROI (−8 − 8)/8 = −2
    assert a["incremental_margin"] == pytest.approx(-8.0)
    assert (a["offer_cost"], a["message_cost"]) == pytest.approx((6.0, 2.0))
    assert a["roi"] == pytest.approx(-2.0)
    assert a["roi_basis"] == "margin"
    assert a["underpowered"] and "fewer than 30" in a["warning"]
    b = table.set_index("segment").loc["b"]
    assert b["rate_treated"] == 0.0 and b["rate_holdout"] == pytest.approx(0.5)
    # b: margin 0/2 vs 3/2 → −1.5 × 2 = −3; costs 1 + 0.5 → ROI (−3 − 1.5)/1.5 = −3
    assert b["roi"] == pytest.approx(-3.0)


def test_lift_table_overall_matches_direct_calls() -> None:
    frame = _customers()
    for by in (None, []):
        overall = lift_table(frame, by)
        assert len(overall) == 1 and list(overall.columns) == LIFT_COLUMNS
    row = lift_table(frame, None).iloc[0]
    direct = proportion_lift(3, 6, 2, 4)
    assert row["abs_lift"] == pytest.approx(0.5 - 0.5)
    assert (row["abs_lift_low"], row["abs_lift_high"]) == pytest.approx((direct.abs_lift_low, direct.abs_lift_high))
    assert (row["rel_lift_low"], row["rel_lift_high"]) == pytest.approx((direct.rel_lift_low, direct.rel_lift_high))


def test_lift_table_without_margin_uses_revenue_and_zero_cost_gives_nan_roi() -> None:
    frame = _customers().drop(columns=["margin"])
    row = lift_table(frame, None).iloc[0]
    assert row["roi_basis"] == "revenue"
    assert row["incremental_margin"] == pytest.approx(row["incremental_revenue"])
    free = frame.assign(offer_cost=0.0, message_cost=0.0)
    assert math.isnan(lift_table(free, None).iloc[0]["roi"])


@pytest.mark.parametrize("column", ["arm", "returned", "revenue", "offer_cost", "message_cost"])
def test_lift_table_names_missing_column(column: str) -> None:
    with pytest.raises(ValueError, match=column):
        lift_table(_customers().drop(columns=[column]), None)


def test_lift_table_rejects_bad_arm_and_missing_group_column() -> None:
    with pytest.raises(ValueError, match="channel"):
        lift_table(_customers(), ["channel"])
    bad = _customers()
    bad.loc[0, "arm"] = "control"
    with pytest.raises(ValueError, match="control"):
        lift_table(bad, None)


def test_lift_table_group_without_holdout_is_reported_not_raised() -> None:
    frame = pd.concat(
        [_customers(), _customers().iloc[:2].assign(segment="c")],  # c: treated only
        ignore_index=True,
    )
    c = lift_table(frame, ["segment"]).set_index("segment").loc["c"]
    assert c["n_holdout"] == 0 and math.isnan(c["abs_lift"])
    assert "no holdout" in c["warning"]


def test_lift_table_recovers_known_effect_on_simulated_campaign() -> None:
    rng = np.random.default_rng(3)
    n = 40_000
    arm = np.where(rng.random(n) < 0.5, "treatment", "holdout")
    returned = rng.random(n) < np.where(arm == "treatment", 0.20, 0.15)
    frame = pd.DataFrame(
        {
            "arm": arm,
            "channel": rng.choice(["email", "sms"], n),
            "returned": returned,
            "revenue": np.where(returned, 50.0, 0.0),
            "offer_cost": np.where((arm == "treatment") & returned, 5.0, 0.0),
            "message_cost": np.where(arm == "treatment", 0.1, 0.0),
        }
    )
    # 99.9 % intervals: a correct method misses the truth in one row of a thousand, whatever the seed.
    table = lift_table(frame, ["channel"], confidence=0.999)
    for _, row in table.iterrows():
        assert row["abs_lift_low"] <= 0.05 <= row["abs_lift_high"]
        assert row["incr_revenue_per_customer_low"] <= 2.5 <= row["incr_revenue_per_customer_high"]


# --------------------------------------------------------------------------------------------------
# retention_curve


def test_retention_curve_hand_example() -> None:
    frame = pd.DataFrame(
        {
            "arm": ["treatment"] * 4 + ["holdout"] * 2,
            "days_to_return": [0.0, 1.5, 3.0, np.nan, 2.0, np.nan],
        }
    )
    curve = retention_curve(frame, max_days=3)
    assert list(curve.columns) == RETENTION_COLUMNS
    assert list(curve["arm"]) == ["treatment"] * 4 + ["holdout"] * 4
    assert list(curve["day"]) == [0, 1, 2, 3] * 2
    assert list(curve["n"]) == [4] * 4 + [2] * 4
    assert list(curve["returned"]) == [1, 1, 2, 3, 0, 0, 1, 1]
    assert curve["share"].tolist() == pytest.approx([0.25, 0.25, 0.5, 0.75, 0.0, 0.0, 0.5, 0.5])


def test_retention_curve_is_monotone_and_ignores_returns_after_window() -> None:
    rng = np.random.default_rng(5)
    days = np.where(rng.random(500) < 0.3, rng.uniform(0, 60, 500), np.nan)
    frame = pd.DataFrame({"arm": rng.choice(["treatment", "holdout"], 500), "days_to_return": days})
    curve = retention_curve(frame, max_days=30)
    assert len(curve) == 2 * 31
    for arm, part in curve.groupby("arm"):
        assert part["share"].is_monotonic_increasing
        in_arm = frame[frame["arm"] == arm]["days_to_return"]
        assert part["share"].iloc[-1] == pytest.approx((in_arm <= 30).mean())


def test_retention_curve_validation() -> None:
    with pytest.raises(ValueError, match="days_to_return"):
        retention_curve(pd.DataFrame({"arm": ["treatment"]}))
    with pytest.raises(ValueError, match="negative"):
        retention_curve(pd.DataFrame({"arm": ["treatment"], "days_to_return": [-1.0]}))
    with pytest.raises(ValueError, match="arm"):
        retention_curve(pd.DataFrame({"arm": ["control"], "days_to_return": [1.0]}))
    empty = retention_curve(pd.DataFrame({"arm": pd.Series([], dtype="str"), "days_to_return": []}))
    assert empty.empty and list(empty.columns) == RETENTION_COLUMNS
