"""Per-customer scores the decision needs: chance still active, expected orders, value at stake.

Two scorers with one output shape: the customer-base models (BG/NBD for activity and purchases,
Gamma-Gamma for spend, giving margin CLV) and a transparent rule for populations too small to fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from winback.config import Economics
from winback.listing import first_few
from winback.segments.bgnbd import expected_purchases, fit_bgnbd, p_alive
from winback.segments.gamma_gamma import expected_spend, fit_gamma_gamma, margin_clv
from winback.segments.lapsed import own_mean_gap

MIN_CUSTOMERS_TO_FIT = 200
DAYS_PER_PERIOD = 7.0  # the models are fitted in weeks: the literature's unit, well-conditioned


@dataclass(frozen=True)
class ModelSummary:
    """What was fitted, kept with the run so a decision can be traced to its model version."""

    method: str
    n_customers: int
    params: dict[str, float]
    log_likelihood: float | None = None
    converged: bool | None = None
    iterations: int | None = None

    def as_dict(self) -> dict[str, object]:
        """The summary as a plain dict, as the run stores it."""
        return asdict(self)


def _refuse_bad_spend(rfm: pd.DataFrame) -> None:
    """Gamma-Gamma needs every repeat buyer's mean order value above zero: name the customers who break it."""
    bad = (rfm["frequency"] > 0) & ~(rfm["mean_spend"] > 0)
    if bad.any():
        shown = first_few(rfm.loc[bad, "customer_id"])
        raise ValueError(
            f"orders: zero, negative or missing mean order value for repeat customer {shown}; "
            "the spend model needs positive amounts (map refunds and cancellations out of the orders)"
        )


def score_with_models(rfm: pd.DataFrame, economics: Economics) -> tuple[pd.DataFrame, ModelSummary]:
    """Fit BG/NBD and Gamma-Gamma on `rfm` (days) and score every customer.

    Returns the frame with p_active, expected_orders (over the horizon), expected_spend (per order) and
    customer_value (discounted margin over the horizon).
    """
    _refuse_bad_spend(rfm)
    f = rfm["frequency"].to_numpy(dtype="float64")
    rec = rfm["recency"].to_numpy(dtype="float64") / DAYS_PER_PERIOD
    t = rfm["T"].to_numpy(dtype="float64") / DAYS_PER_PERIOD
    spend = rfm["mean_spend"].to_numpy(dtype="float64")
    bg = fit_bgnbd(f, rec, t)
    gg = fit_gamma_gamma(f, spend)
    horizon = economics.horizon_days / DAYS_PER_PERIOD
    weekly_rate = (1 + economics.annual_discount_rate) ** (DAYS_PER_PERIOD / 365.0) - 1
    out = rfm.copy(deep=False)  # copy-on-write
    out["p_active"] = p_alive(bg, f, rec, t)
    out["expected_orders"] = expected_purchases(bg, horizon, f, rec, t)
    out["expected_spend"] = expected_spend(gg, f, spend)
    out["customer_value"] = margin_clv(
        bg,
        gg,
        f,
        rec,
        t,
        spend,
        horizon_periods=round(horizon),
        margin=economics.margin,
        discount_rate_per_period=weekly_rate,
    )
    params = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    summary = ModelSummary("bgnbd+gamma_gamma", len(rfm), params, bg.log_likelihood, bg.converged and gg.converged,
                           bg.iterations)  # fmt: skip
    return out, summary


def score_with_rules(rfm: pd.DataFrame, economics: Economics) -> tuple[pd.DataFrame, ModelSummary]:
    """A transparent fallback: activity decays once a customer is past their own mean gap."""
    gap = own_mean_gap(rfm)
    overdue_days = (rfm["days_since_last"] - gap).clip(lower=0)
    out = rfm.copy(deep=False)  # copy-on-write
    out["p_active"] = np.exp(-overdue_days / (2.0 * gap))
    out["expected_orders"] = out["p_active"] * economics.horizon_days / gap
    out["expected_spend"] = rfm["mean_spend"]
    out["customer_value"] = economics.margin * out["expected_orders"] * out["expected_spend"]
    return out, ModelSummary("rules", len(rfm), {})


def score_customers(
    rfm: pd.DataFrame, economics: Economics, use_models: bool = True
) -> tuple[pd.DataFrame, ModelSummary]:
    """Scores from the models when asked and there is enough data to fit them, else from the rule."""
    if use_models and (rfm["frequency"] > 0).sum() >= MIN_CUSTOMERS_TO_FIT:
        return score_with_models(rfm, economics)
    return score_with_rules(rfm, economics)
