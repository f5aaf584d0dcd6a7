"""Confidence intervals and power for comparing two groups: the building blocks of `reports.stats`.

* a return rate: Wilson's (1927) score interval;
* a difference of return rates: Newcombe's (1998) hybrid score interval (method 10), from the two Wilson
  intervals; it never leaves [-1, 1] and keeps close to nominal coverage at small n and rates near 0 or 1;
* a risk ratio: the Katz et al. (1978) log interval, 0.5 added to every cell when one is zero;
* a difference of means (revenue per customer): Welch's (1947) unequal-variance t interval;
* the minimum detectable effect of a two-proportion z-test at given group sizes (Fleiss).

Pure numpy / scipy; the interval helpers accept arrays so simulations evaluate many replicates at once.
See `reports.stats`'s docstring for why these methods suit win-back's small groups and low rates.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats as sps

DEFAULT_POWER = 0.80


def two_sided_z(confidence: float) -> float:
    """The standard normal quantile of a two-sided interval at `confidence` (1.96 at 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(
    successes: np.ndarray | float, n: np.ndarray | float, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson (1927) score interval for a binomial proportion; vectorised, NaN where n == 0.

    Used instead of the Wald interval because it stays inside [0, 1] and keeps its coverage when the
    rate is near 0 (a 2 % return rate in a 60-customer segment is common here).
    """
    z = two_sided_z(confidence)
    x = np.asarray(successes, dtype=float)
    n_ = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n_
        z2 = z * z
        denom = n_ + z2
        centre = (x + z2 / 2.0) / denom
        half = z * np.sqrt(n_) / denom * np.sqrt(np.clip(p * (1.0 - p), 0.0, None) + z2 / (4.0 * n_))
        low = np.where(n_ > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n_ > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def newcombe_interval(
    x1: np.ndarray | float,
    n1: np.ndarray | float,
    x2: np.ndarray | float,
    n2: np.ndarray | float,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for ``x1/n1 - x2/n2`` by Newcombe's (1998) hybrid score method (his method 10).

    The distance from the point estimate to each limit is the root of the summed squared distances
    from each rate to the relevant limit of its own Wilson interval.
    """
    x1_, n1_, x2_, n2_ = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    l1, u1 = wilson_interval(x1_, n1_, confidence=confidence)
    l2, u2 = wilson_interval(x2_, n2_, confidence=confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = x1_ / n1_
        p2 = x2_ / n2_
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def katz_log_rr(
    x1: np.ndarray | float,
    n1: np.ndarray | float,
    x2: np.ndarray | float,
    n2: np.ndarray | float,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Risk ratio ``(x1/n1) / (x2/n2)`` and its Katz et al. (1978) log-scale interval.

    ``se(log RR) = sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)``. When any cell of the 2×2 table is zero
    (no returners, or everybody returned, in an arm) 0.5 is added to all four cells, so each ``n``
    grows by 1; the point estimate is taken from the same corrected table so it lies inside its
    interval. Returns ``(rr, low, high)``; NaN where an arm is empty.
    """
    z = two_sided_z(confidence)
    a, m1, c, m2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    zero_cell = (a == 0) | (a == m1) | (c == 0) | (c == m2)
    a = np.where(zero_cell, a + 0.5, a)
    c = np.where(zero_cell, c + 0.5, c)
    m1 = np.where(zero_cell, m1 + 1.0, m1)
    m2 = np.where(zero_cell, m2 + 1.0, m2)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rr = np.log(a / m1) - np.log(c / m2)
        se = np.sqrt(1.0 / a - 1.0 / m1 + 1.0 / c - 1.0 / m2)
    empty = (np.asarray(n1, dtype=float) <= 0) | (np.asarray(n2, dtype=float) <= 0)
    rr = np.where(empty, np.nan, np.exp(log_rr))
    low = np.where(empty, np.nan, np.exp(log_rr - z * se))
    high = np.where(empty, np.nan, np.exp(log_rr + z * se))
    return rr, low, high


def welch_interval(
    mean1: np.ndarray | float,
    var1: np.ndarray | float,
    n1: np.ndarray | float,
    mean2: np.ndarray | float,
    var2: np.ndarray | float,
    n2: np.ndarray | float,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Welch (1947) interval for ``mean1 - mean2`` from summary statistics (sample variances, ddof=1).

    Degrees of freedom by Welch–Satterthwaite. Returns ``(low, high, se, df)``; when both variances
    are zero the interval collapses to the point difference, and it is NaN when an arm has < 2 values.
    """
    two_sided_z(confidence)  # validates
    m1, v1, k1, m2, v2, k2 = (np.asarray(v, dtype=float) for v in (mean1, var1, n1, mean2, var2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        s1 = v1 / k1
        s2 = v2 / k2
        se = np.sqrt(s1 + s2)
        df = (s1 + s2) ** 2 / (s1**2 / (k1 - 1.0) + s2**2 / (k2 - 1.0))
        t = sps.t.ppf(0.5 + confidence / 2.0, df)
        half = np.where(se == 0, 0.0, t * se)
    d = m1 - m2
    ok = (k1 >= 2) & (k2 >= 2)
    low = np.where(ok, d - half, np.nan)
    high = np.where(ok, d + half, np.nan)
    return low, high, np.where(ok, se, np.nan), np.where(ok, df, np.nan)


def minimum_detectable_effect(
    n_treated: int,
    n_holdout: int,
    baseline_rate: float,
    *,
    confidence: float = 0.95,
    power: float = DEFAULT_POWER,
) -> float:
    """Smallest absolute increase over ``baseline_rate`` detectable by a two-sided two-proportion z-test.

    Solves the standard sample-size equation (Fleiss, *Statistical Methods for Rates and
    Proportions*, without continuity correction) for the difference ``d`` at fixed group sizes::

        d = z_(1-α/2) · sqrt(p̄(1-p̄)(1/n_t + 1/n_h)) + z_power · sqrt(p_t(1-p_t)/n_t + p_h(1-p_h)/n_h)

    with ``p_h`` the holdout (baseline) rate, ``p_t = p_h + d`` and ``p̄`` the size-weighted mean.
    Win-back campaigns are meant to raise return rates, so only increases are considered. Returns
    NaN for an empty arm and ``inf`` when not even ``p_t = 1`` would be detectable.
    """
    if n_treated <= 0 or n_holdout <= 0 or not math.isfinite(baseline_rate):
        return math.nan
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    z_a = two_sided_z(confidence)
    z_b = float(sps.norm.ppf(power))
    p_h = min(max(float(baseline_rate), 0.0), 1.0)
    n_t, n_h = float(n_treated), float(n_holdout)

    def shortfall(d: float) -> float:
        p_t = p_h + d
        p_bar = (n_t * p_t + n_h * p_h) / (n_t + n_h)
        needed = z_a * math.sqrt(p_bar * (1 - p_bar) * (1 / n_t + 1 / n_h)) + z_b * math.sqrt(
            p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h
        )
        return d - needed

    upper = 1.0 - p_h
    if upper <= 0.0 or shortfall(upper) < 0.0:
        return math.inf
    lower = min(1e-12, upper / 2)
    if shortfall(lower) >= 0.0:  # only possible for degenerate inputs; the effect is ~0
        return lower
    return float(optimize.brentq(shortfall, lower, upper, xtol=1e-12))
