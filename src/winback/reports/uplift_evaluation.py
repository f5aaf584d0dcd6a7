"""Is the uplift model earning its keep? Checked on each run's own random holdout, fresh data it never saw.

Every campaign keeps its random holdout, and the model a run decided with was trained only on runs closed
before it, so the run's treated and held-out customers are an honest test: the Qini curve and coefficient
of the uplift the model predicted for them, the observed uplift by predicted-uplift decile, and what
targeting by the model would have returned against targeting by the per-offer-kind (constant) lift and at
random, at the same budget (the same number of customers contacted, the top share of the run's
randomized customers by each policy's ranking).

Spend too, where the run had a validated spend model: the Qini coefficient of the predicted spend uplift
against the revenue in the window, and the policy revenue, the incremental revenue per 1,000 contacted of
targeting by the model's expected incremental value (predicted uplift × value + predicted spend uplift ×
margin), by the constant lift and at random, at the same budgets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from winback.reports.uplift_metrics import (
    policy_value,
    qini_coefficient,
    qini_curve,
    qini_interval,
    uplift_by_decile,
)
from winback.warehouse.uplift_history import closed_runs, scored_arms

TARGET_SHARES = (0.2, 0.5)
POLICIES = ("uplift model", "constant lift", "random")
MIN_ARM = 30  # fewer treated or held-out customers than this: no evaluation, the noise would be all of it
CURVE_POINTS = 200
RECENT_RUNS = 12  # the table of closed runs: the latest ones (each is read whole and bootstrapped)


@dataclass(frozen=True)
class UpliftEvaluation:
    """The reported run's holdout test of its uplift predictions, and the Qini of every closed run."""

    run_id: int
    note: str | None  # why there is no evaluation of the reported run (then the frames are empty)
    n_treated: int
    n_holdout: int
    qini: float
    qini_low: float
    qini_high: float
    curve: pd.DataFrame  # share, qini (incremental returns), random
    deciles: pd.DataFrame  # reports.uplift_metrics.DECILE_COLUMNS
    policies: pd.DataFrame  # share, policy, n_targeted, per_1000, per_1000_low, per_1000_high
    runs: pd.DataFrame  # run_id, as_of, n_treated, n_holdout, qini, qini_low, qini_high
    spend_qini: float = float("nan")  # of the predicted spend uplift against the window's revenue (NaN: none)
    spend_qini_low: float = float("nan")
    spend_qini_high: float = float("nan")
    revenue_policies: pd.DataFrame = field(default_factory=pd.DataFrame)  # as policies, revenue per 1,000


def constant_lift_score(frame: pd.DataFrame, lifts: dict[str, float], contact_cost: dict[str, float]) -> np.ndarray:
    """The expected gain the per-offer-kind lift gives each customer: how the constant-lift policy ranks them."""
    lift = frame["offer_kind"].fillna("none").map(lifts).fillna(lifts.get("none", 0.0)).astype(float)
    cost = frame["offer_cost"].fillna(0.0) + frame["channel"].map(contact_cost).fillna(0.0)
    return (lift * frame["customer_value"].fillna(0.0) - cost).to_numpy(dtype=float)


def _thin(curve: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    """At most ``points`` evenly spaced points of a long curve, the first and last kept (for the SVG)."""
    if len(curve) <= points:
        return curve.reset_index(drop=True)
    keep = np.unique(np.linspace(0, len(curve) - 1, points).round().astype(int))
    return curve.iloc[keep].reset_index(drop=True)


def _policies(score: np.ndarray, constant: np.ndarray, treated: np.ndarray, returned: np.ndarray) -> pd.DataFrame:
    """Per 1,000 targeted, the outcome's uplift of each policy's top shares (returns, or revenue in money)."""
    rows = []
    for share in TARGET_SHARES:
        for policy, ranking in zip(POLICIES, (score, constant, None), strict=True):
            value = policy_value(ranking, treated, returned, share=share)
            rows.append({"share": share, "policy": policy, "n_targeted": int(value["n_targeted"]),
                         "per_1000": value["uplift"] * 1000, "per_1000_low": value["low"] * 1000,
                         "per_1000_high": value["high"] * 1000})  # fmt: skip
    return pd.DataFrame(rows)


def _run_rows(arms: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run_id, as_of in zip(runs["run_id"], runs["as_of"], strict=True):
        part = arms.loc[(arms["run_id"] == run_id) & arms["predicted_uplift"].notna()]
        treated = (part["arm"] == "treatment").to_numpy()
        if treated.sum() < MIN_ARM or (~treated).sum() < MIN_ARM:
            continue
        score, returned = part["predicted_uplift"].to_numpy(), part["returned"].to_numpy(dtype=float)
        low, high = qini_interval(score, treated, returned, replicates=100)
        qini = qini_coefficient(score, treated, returned)
        rows.append({"run_id": int(run_id), "as_of": pd.Timestamp(as_of).date().isoformat(),
                     "n_treated": int(treated.sum()), "n_holdout": int((~treated).sum()),
                     "qini": qini, "qini_low": low, "qini_high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=["run_id", "as_of", "n_treated", "n_holdout", "qini", "qini_low", "qini_high"])


def _empty(run_id: int, note: str, runs: pd.DataFrame) -> UpliftEvaluation:
    nan = float("nan")
    return UpliftEvaluation(run_id, note, 0, 0, nan, nan, nan, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), runs)


def evaluate_uplift(
    conn: Connection,
    run_id: int,
    campaign_id: str,
    stats: dict[str, Any],
    contact_cost: dict[str, float],
    until: dt.datetime,
    margin: float = 0.3,
) -> UpliftEvaluation:
    """The uplift section of the report for run ``run_id`` of ``campaign_id``.

    Parameters
    ----------
    stats
        The run's stats (``lift_used``: the per-offer-kind lift it decided with, the constant-lift policy's).
    contact_cost
        Per channel, as the campaign's economics state it.
    until
        Now: which runs count as closed for the table of every closed run.
    margin
        The campaign's gross margin: the spend uplift's worth in the model policy's ranking by value.
    """
    closed = closed_runs(conn, campaign_id, until).tail(RECENT_RUNS)
    ids = sorted({int(run_id), *closed["run_id"].astype(int)})
    arms = scored_arms(conn, ids)
    runs = _run_rows(arms, closed)
    mine = arms.loc[arms["run_id"] == run_id]
    if mine["predicted_uplift"].isna().all():
        note = (stats.get("uplift") or {}).get("note") or "the run decided without an uplift model"
        return _empty(run_id, f"No uplift predictions for this run: {note}.", runs)
    mine = mine.loc[mine["predicted_uplift"].notna()]
    treated = (mine["arm"] == "treatment").to_numpy()
    if treated.sum() < MIN_ARM or (~treated).sum() < MIN_ARM:
        return _empty(run_id, f"Fewer than {MIN_ARM} treated or held-out customers with a prediction.", runs)
    score, returned = mine["predicted_uplift"].to_numpy(), mine["returned"].to_numpy(dtype=float)
    low, high = qini_interval(score, treated, returned, replicates=200)
    lifts = {str(k): float(v) for k, v in (stats.get("lift_used") or {}).items()}
    constant = constant_lift_score(mine, lifts, contact_cost)
    spend = _spend(mine, treated, constant, margin)
    return UpliftEvaluation(
        run_id=run_id,
        note=None,
        n_treated=int(treated.sum()),
        n_holdout=int((~treated).sum()),
        qini=qini_coefficient(score, treated, returned),
        qini_low=low,
        qini_high=high,
        curve=_thin(qini_curve(score, treated, returned)[["share", "qini", "random"]]),
        deciles=uplift_by_decile(score, treated, returned),
        policies=_policies(score, constant, treated, returned),
        runs=runs,
        **spend,
    )


def _spend(mine: pd.DataFrame, treated: np.ndarray, constant: np.ndarray, margin: float) -> dict[str, Any]:
    """The spend Qini and the policy revenue, where the run predicted spend uplifts (else nothing)."""
    spend = mine["predicted_spend_uplift"].to_numpy(dtype=float)
    if not np.isfinite(spend).any():
        return {}
    spend = np.nan_to_num(spend)
    revenue = mine["revenue"].fillna(0.0).to_numpy(dtype=float)
    low, high = qini_interval(spend, treated, revenue, replicates=200)
    value = mine["predicted_uplift"].to_numpy(dtype=float) * mine["customer_value"].fillna(0.0).to_numpy() + (
        spend * margin
    )
    return {
        "spend_qini": qini_coefficient(spend, treated, revenue),
        "spend_qini_low": low,
        "spend_qini_high": high,
        "revenue_policies": _policies(value, constant, treated, revenue),
    }
