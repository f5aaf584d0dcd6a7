"""Per-customer scores the decision needs: chance still active, expected orders, value at stake.

Two scorers with one output shape: the customer-base models (BG/NBD for activity and purchases,
Gamma-Gamma for spend, giving margin CLV) and a transparent rule for populations too small to fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from winback.config import Economics
from winback.listing import first_few
from winback.segments.bgnbd import BgNbdFit, expected_purchases, fit_bgnbd, p_alive
from winback.segments.gamma_gamma import GammaGammaFit, expected_spend, fit_gamma_gamma, margin_clv
from winback.segments.lapsed import own_mean_gap
from winback.segments.model_inputs import spend_problems

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


@dataclass(frozen=True)
class Scorer:
    """A fitted scorer: the models' parameters, or the rule with the population's typical gap.

    Fitted once on every customer of the run (`fit_scorer`), then applied to any part of them
    (`apply_scorer`): a partitioned run scores each partition with the one global fit.
    """

    summary: ModelSummary
    bg: BgNbdFit | None = None
    gg: GammaGammaFit | None = None
    typical_gap: float = 90.0  # the repeat buyers' median gap: one-time buyers' in the rule and the lapsed rule
    # the discounted purchase sums of the (frequency, T) pairs scored so far, per (horizon, discount): each
    # partition of a run meets most pairs again (`bgnbd_predict.discounted_expected_purchases`)
    purchase_sums: dict[tuple[int, float], dict[tuple[float, float], float]] = field(
        default_factory=dict, compare=False, repr=False
    )


def fit_scorer(
    inputs: pd.DataFrame, economics: Economics, use_models: bool = True, bad_spend: pd.Series | None = None
) -> Scorer:
    """The models fitted on `inputs` (MODEL_INPUTS, days) when asked and there is enough data, else the rule.

    `bad_spend` names the repeat buyers without a positive mean order value (`spend_problems`, default
    taken from `inputs`): the models refuse to fit while there are any.
    """
    f = inputs["frequency"].to_numpy(dtype="float64")
    rec = inputs["recency"].to_numpy(dtype="float64")
    repeat = f > 0
    gap = float(pd.Series(rec[repeat] / f[repeat]).median()) if repeat.any() else 90.0
    if not (use_models and int(repeat.sum()) >= MIN_CUSTOMERS_TO_FIT):
        return Scorer(ModelSummary("rules", len(inputs), {}), typical_gap=gap)
    _refuse_bad_spend(spend_problems(inputs) if bad_spend is None else bad_spend)
    t = inputs["T"].to_numpy(dtype="float64") / DAYS_PER_PERIOD
    bg = fit_bgnbd(f, rec / DAYS_PER_PERIOD, t)
    gg = fit_gamma_gamma(f, inputs["mean_spend"].to_numpy(dtype="float64"))
    params = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    summary = ModelSummary("bgnbd+gamma_gamma", len(inputs), params, bg.log_likelihood, bg.converged and gg.converged,
                           bg.iterations)  # fmt: skip
    return Scorer(summary, bg, gg, gap)


def apply_scorer(rfm: pd.DataFrame, scorer: Scorer, economics: Economics) -> pd.DataFrame:
    """`rfm` with p_active, expected_orders (over the horizon), expected_spend (per order), customer_value.

    customer_value is the discounted margin over the horizon.
    """
    if scorer.bg is None or scorer.gg is None:
        return _rule_scores(rfm, economics, scorer.typical_gap)
    f = rfm["frequency"].to_numpy(dtype="float64")
    rec = rfm["recency"].to_numpy(dtype="float64") / DAYS_PER_PERIOD
    t = rfm["T"].to_numpy(dtype="float64") / DAYS_PER_PERIOD
    spend = rfm["mean_spend"].to_numpy(dtype="float64")
    bg, gg = scorer.bg, scorer.gg
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
        known=scorer.purchase_sums.setdefault((round(horizon), weekly_rate), {}),
    )
    return out


def _refuse_bad_spend(bad: pd.Series) -> None:
    """Gamma-Gamma needs every repeat buyer's mean order value above zero: name the customers who break it."""
    if len(bad):
        raise ValueError(
            f"orders: zero, negative or missing mean order value for repeat customer {first_few(bad)}; "
            "the spend model needs positive amounts (map refunds and cancellations out of the orders)"
        )


def score_with_rules(rfm: pd.DataFrame, economics: Economics) -> tuple[pd.DataFrame, ModelSummary]:
    """A transparent fallback: activity decays once a customer is past their own mean gap."""
    scorer = fit_scorer(rfm, economics, use_models=False)
    return apply_scorer(rfm, scorer, economics), scorer.summary


def _rule_scores(rfm: pd.DataFrame, economics: Economics, typical_gap: float) -> pd.DataFrame:
    gap = own_mean_gap(rfm, typical_gap)
    overdue_days = (rfm["days_since_last"] - gap).clip(lower=0)
    out = rfm.copy(deep=False)  # copy-on-write
    out["p_active"] = np.exp(-overdue_days / (2.0 * gap))
    out["expected_orders"] = out["p_active"] * economics.horizon_days / gap
    out["expected_spend"] = rfm["mean_spend"]
    out["customer_value"] = economics.margin * out["expected_orders"] * out["expected_spend"]
    return out


def score_customers(
    rfm: pd.DataFrame, economics: Economics, use_models: bool = True
) -> tuple[pd.DataFrame, ModelSummary]:
    """Scores from the models when asked and there is enough data to fit them, else from the rule."""
    scorer = fit_scorer(rfm, economics, use_models)
    return apply_scorer(rfm, scorer, economics), scorer.summary
