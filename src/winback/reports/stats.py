"""Did contacting customers change anything? Treatment-vs-holdout effect estimates.

Every campaign keeps a random holdout that is *not* contacted. The effect of the campaign is the
difference between the treated and the holdout arm, and the only honest way to report it is with an
interval: win-back groups are often small and return rates are often low, which is exactly where
the textbook Wald interval (p ± z·se) misbehaves. The methods below were chosen for that regime:

* absolute lift (difference of return rates): Newcombe's hybrid score interval, method 10 of
  Newcombe RG (1998) "Interval estimation for the difference between independent proportions:
  comparison of eleven methods", Statistics in Medicine 17:873-890. It combines the two Wilson score
  intervals (Wilson 1927), never leaves [-1, 1], and keeps close to nominal coverage at small n and
  at rates near 0 or 1.
* relative lift (risk ratio − 1): the log risk-ratio interval of Katz D, Baptista J, Azen SP, Pike MC
  (1978) "Obtaining confidence intervals for the risk ratio in cohort studies", Biometrics 34:469-474,
  with 0.5 added to every cell of the 2×2 table when one of them is zero (otherwise the log is
  undefined).
* incremental revenue per customer: Welch's unequal-variance t interval (Welch 1947). Revenue is
  zero-inflated and right-skewed, but with hundreds of customers per arm the sample means are close
  to normal (central limit theorem), and Welch does not assume the arms share a variance, which they
  do not when the campaign changes the share of buyers. For tiny groups the interval is only a rough
  guide; the power warning of the return-rate comparison flags those groups.

All functions are pure (numpy / scipy / pandas, no database). The interval helpers live in
`reports.intervals` (re-exported here); they accept numpy arrays so that simulations can evaluate
thousands of replicates at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from winback.reports.intervals import (
    DEFAULT_POWER,
    katz_log_rr,
    minimum_detectable_effect,
    newcombe_interval,
    two_sided_z,
    welch_interval,
    wilson_interval,
)

__all__ = [
    "ARMS", "DEFAULT_MIN_EFFECT", "DEFAULT_POWER", "LIFT_COLUMNS", "MIN_GROUP_SIZE", "LiftEstimate",
    "MeanDiffEstimate", "katz_log_rr", "lift_table", "mean_difference", "minimum_detectable_effect",
    "newcombe_interval", "proportion_lift", "welch_interval", "wilson_interval",
]  # fmt: skip

ARMS: tuple[str, str] = ("treatment", "holdout")
MIN_GROUP_SIZE = 30
DEFAULT_MIN_EFFECT = 0.02

LIFT_COLUMNS: list[str] = [
    "n_treated",
    "n_holdout",
    "rate_treated",
    "rate_holdout",
    "abs_lift",
    "abs_lift_low",
    "abs_lift_high",
    "rel_lift",
    "rel_lift_low",
    "rel_lift_high",
    "incr_revenue_per_customer",
    "incr_revenue_per_customer_low",
    "incr_revenue_per_customer_high",
    "incremental_revenue",
    "incremental_margin",
    "offer_cost",
    "message_cost",
    "roi",
    "roi_basis",
    "mde",
    "underpowered",
    "warning",
]
"""Metric columns of :func:`lift_table`, in output order (group columns come first)."""

_REQUIRED_COLUMNS: tuple[str, ...] = ("arm", "returned", "revenue", "offer_cost", "message_cost")


@dataclass(frozen=True)
class LiftEstimate:
    """Return-rate comparison of the treated arm against the holdout arm.

    Lifts are treated minus holdout: ``abs_lift`` is a difference of proportions (0.04 = +4
    percentage points), ``rel_lift`` is ``rate_treated / rate_holdout - 1``. ``mde`` is the smallest
    absolute lift these group sizes would detect with the requested power; ``underpowered`` is set
    when it exceeds ``min_effect`` or when an arm has fewer than 30 customers.
    """

    returned_treated: int
    n_treated: int
    returned_holdout: int
    n_holdout: int
    rate_treated: float
    rate_holdout: float
    abs_lift: float
    abs_lift_low: float
    abs_lift_high: float
    rel_lift: float
    rel_lift_low: float
    rel_lift_high: float
    mde: float
    confidence: float
    power: float
    min_effect: float
    underpowered: bool
    warning: str | None


@dataclass(frozen=True)
class MeanDiffEstimate:
    """Difference of per-customer means (treated − holdout), e.g. incremental revenue per customer.

    ``incremental_total`` scales the per-customer difference to the treated arm
    (``diff * n_treated``): what the contacted customers spent beyond what they would have spent
    uncontacted, estimated from the holdout.
    """

    n_treated: int
    n_holdout: int
    mean_treated: float
    mean_holdout: float
    diff: float
    low: float
    high: float
    se: float
    df: float
    total_treated: float
    total_holdout: float
    incremental_total: float
    confidence: float


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _pp(x: float) -> str:
    return f"{x * 100:.1f} pp"


def proportion_lift(
    returned_treated: int,
    n_treated: int,
    returned_holdout: int,
    n_holdout: int,
    *,
    confidence: float = 0.95,
    min_effect: float = DEFAULT_MIN_EFFECT,
    power: float = DEFAULT_POWER,
) -> LiftEstimate:
    """Compare the return rate of the treated arm with the holdout arm.

    ``min_effect`` is the smallest absolute lift that matters to the business (default 2 percentage
    points); a comparison that could not detect it with ``power`` is flagged ``underpowered`` with a
    human-readable ``warning``, as is any comparison with fewer than 30 customers in an arm. An empty
    arm yields NaN estimates and a warning instead of an exception, so that breakdown tables can show
    sparse groups.
    """
    x1 = _check_count("returned_treated", returned_treated)
    n1 = _check_count("n_treated", n_treated)
    x2 = _check_count("returned_holdout", returned_holdout)
    n2 = _check_count("n_holdout", n_holdout)
    if x1 > n1 or x2 > n2:
        raise ValueError("returned counts cannot exceed group sizes")
    two_sided_z(confidence)

    rate_t = x1 / n1 if n1 else math.nan
    rate_h = x2 / n2 if n2 else math.nan
    if n1 and n2:
        low, high = (float(v) for v in newcombe_interval(x1, n1, x2, n2, confidence=confidence))
        rr, rr_low, rr_high = (float(v) for v in katz_log_rr(x1, n1, x2, n2, confidence=confidence))
    else:
        low = high = rr = rr_low = rr_high = math.nan
    mde = minimum_detectable_effect(n1, n2, rate_h, confidence=confidence, power=power)

    problems: list[str] = []
    if n1 == 0 or n2 == 0:
        empty = "treated" if n1 == 0 else "holdout"
        problems.append(f"no {empty} customers in this group, so no comparison is possible")
    else:
        if min(n1, n2) < MIN_GROUP_SIZE:
            problems.append(f"fewer than {MIN_GROUP_SIZE} customers in an arm ({n1} treated, {n2} holdout)")
        if not mde <= min_effect:
            shown = "no achievable lift" if math.isinf(mde) else _pp(mde)
            problems.append(
                f"the minimum detectable lift at {power:.0%} power is {shown}, above the {_pp(min_effect)} that matters"
            )
    warning = ("Underpowered: " + "; ".join(problems) + ".") if problems else None

    return LiftEstimate(
        returned_treated=x1,
        n_treated=n1,
        returned_holdout=x2,
        n_holdout=n2,
        rate_treated=rate_t,
        rate_holdout=rate_h,
        abs_lift=rate_t - rate_h,
        abs_lift_low=low,
        abs_lift_high=high,
        rel_lift=rr - 1.0,
        rel_lift_low=rr_low - 1.0,
        rel_lift_high=rr_high - 1.0,
        mde=mde,
        confidence=confidence,
        power=power,
        min_effect=min_effect,
        underpowered=bool(problems),
        warning=warning,
    )


def _as_float_array(values: np.ndarray | pd.Series | list[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def mean_difference(
    treated_values: np.ndarray, holdout_values: np.ndarray, *, confidence: float = 0.95
) -> MeanDiffEstimate:
    """Incremental value per customer (treated mean − holdout mean) with a Welch t interval.

    Pass one value per considered customer, including the zeros of customers who did not buy:
    the per-customer mean over everyone is what scales to an incremental total. Values must be
    finite. Arms with fewer than two values give a NaN interval.
    """
    t = _as_float_array(treated_values, "treated_values")
    h = _as_float_array(holdout_values, "holdout_values")
    n1, n2 = t.size, h.size
    m1 = float(t.mean()) if n1 else math.nan
    m2 = float(h.mean()) if n2 else math.nan
    v1 = float(t.var(ddof=1)) if n1 >= 2 else math.nan
    v2 = float(h.var(ddof=1)) if n2 >= 2 else math.nan
    low, high, se, df = (float(v) for v in welch_interval(m1, v1, n1, m2, v2, n2, confidence=confidence))
    diff = m1 - m2
    return MeanDiffEstimate(
        n_treated=n1,
        n_holdout=n2,
        mean_treated=m1,
        mean_holdout=m2,
        diff=diff,
        low=low,
        high=high,
        se=se,
        df=df,
        total_treated=float(t.sum()),
        total_holdout=float(h.sum()),
        incremental_total=diff * n1 if n1 else 0.0,
        confidence=confidence,
    )


def _validate_frame(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    missing = [c for c in (*_REQUIRED_COLUMNS, *by) if c not in frame.columns]
    if missing:
        raise ValueError(f"lift_table: missing required column(s): {', '.join(map(repr, missing))}")
    unknown = sorted(set(frame["arm"].dropna().astype(str)) - set(ARMS))
    if unknown or frame["arm"].isna().any():
        raise ValueError(f"lift_table: column 'arm' must be 'treatment' or 'holdout', found {unknown or 'NaN'}")
    if frame["returned"].isna().any():
        raise ValueError("lift_table: column 'returned' contains missing values")
    returned = frame["returned"].astype(bool)
    if not (frame["returned"].astype(float) == returned.astype(float)).all():
        raise ValueError("lift_table: column 'returned' must be boolean (or 0/1)")
    out = frame.copy()
    out["returned"] = returned
    # A customer without an attributed order has no revenue or margin, and a customer who was never
    # sent anything incurred no cost: missing money is zero, not unknown.
    for col in ("revenue", "margin", "offer_cost", "message_cost"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col]).astype(float).fillna(0.0)
    return out


def _group_row(group: pd.DataFrame, *, confidence: float, min_effect: float, has_margin: bool) -> dict[str, object]:
    treated = group[group["arm"] == "treatment"]
    holdout = group[group["arm"] == "holdout"]
    lift = proportion_lift(
        int(treated["returned"].sum()),
        len(treated),
        int(holdout["returned"].sum()),
        len(holdout),
        confidence=confidence,
        min_effect=min_effect,
    )
    revenue = mean_difference(treated["revenue"].to_numpy(), holdout["revenue"].to_numpy(), confidence=confidence)
    if has_margin:
        margin = mean_difference(treated["margin"].to_numpy(), holdout["margin"].to_numpy(), confidence=confidence)
        incremental_margin = margin.incremental_total
    else:
        incremental_margin = revenue.incremental_total
    offer_cost = float(group["offer_cost"].sum())
    message_cost = float(group["message_cost"].sum())
    costs = offer_cost + message_cost
    roi = (incremental_margin - costs) / costs if costs > 0 else math.nan
    return {
        "n_treated": lift.n_treated,
        "n_holdout": lift.n_holdout,
        "rate_treated": lift.rate_treated,
        "rate_holdout": lift.rate_holdout,
        "abs_lift": lift.abs_lift,
        "abs_lift_low": lift.abs_lift_low,
        "abs_lift_high": lift.abs_lift_high,
        "rel_lift": lift.rel_lift,
        "rel_lift_low": lift.rel_lift_low,
        "rel_lift_high": lift.rel_lift_high,
        "incr_revenue_per_customer": revenue.diff,
        "incr_revenue_per_customer_low": revenue.low,
        "incr_revenue_per_customer_high": revenue.high,
        "incremental_revenue": revenue.incremental_total,
        "incremental_margin": incremental_margin,
        "offer_cost": offer_cost,
        "message_cost": message_cost,
        "roi": roi,
        "roi_basis": "margin" if has_margin else "revenue",
        "mde": lift.mde,
        "underpowered": lift.underpowered,
        "warning": lift.warning,
    }


def lift_table(
    frame: pd.DataFrame,
    by: list[str] | None,
    *,
    confidence: float = 0.95,
    min_effect: float = DEFAULT_MIN_EFFECT,
) -> pd.DataFrame:
    """One row of lift, revenue and ROI estimates per group (or one overall row when ``by`` is empty).

    Input: one row per considered customer with ``arm`` ('treatment' | 'holdout'), ``returned``
    (bool), ``revenue``, optional ``margin``, ``offer_cost`` (cost actually incurred, 0 for the
    holdout) and ``message_cost``, plus the ``by`` columns. Missing money values count as 0.

    Output columns: the ``by`` columns, then :data:`LIFT_COLUMNS`. ``incremental_revenue`` and
    ``incremental_margin`` are the per-customer differences × ``n_treated``; ``roi`` is
    ``(incremental_margin − offer_cost − message_cost) / (offer_cost + message_cost)``, NaN when the
    costs are 0. Without a ``margin`` column revenue stands in for margin, which overstates ROI;
    ``roi_basis`` records which was used.
    """
    by = list(by or [])
    data = _validate_frame(frame, by)
    has_margin = "margin" in data.columns
    kwargs = {"confidence": confidence, "min_effect": min_effect, "has_margin": has_margin}

    if not by:
        return pd.DataFrame([_group_row(data, **kwargs)], columns=LIFT_COLUMNS)

    rows: list[dict[str, object]] = []
    for key, group in data.groupby(by, dropna=False, sort=True, observed=True):
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, keys, strict=True)), **_group_row(group, **kwargs)})
    return pd.DataFrame(rows, columns=[*by, *LIFT_COLUMNS])
