"""Why the model expects what it does of one customer: the predicted uplift and its main drivers.

The model a run decided with is refitted from the same state (the runs closed by that run's as-of, the
learner it chose, the same seed), so the explanation is the decision's. Each feature's part is measured by
occlusion: how much the predicted uplift moves when that one feature is set to a typical customer's value
(the training median, or the commonest level), all else kept. It works for any learner, linear or trees,
and reads in the decision's own units: points of return probability.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Text, cast, select

from winback.segments.decision_features import country_of, features_frame
from winback.segments.uplift.decision_model import (
    MODEL_SOURCE,
    SPEND_CANDIDATES,
    DecisionUplift,
    train_decision_uplift,
)
from winback.segments.uplift.selection import DEFAULT_CANDIDATES
from winback.warehouse.models import CampaignRun, Decision
from winback.warehouse.timeutil import utc

DRIVERS = 3
NEGLIGIBLE = 0.0005  # half a tenth of a point: below what the lines print
# features named as a marketer would say them (others: the name with spaces)
LABELS = {
    "T": "days as a customer",
    "recency": "days from first to last order",
    "frequency": "repeat purchases",
    "days_since_last": "days since the last order",
    "mean_spend": "mean order",
    "total_spend": "total spend",
    "p_active": "P(active)",
    "days_since_contact": "days since winback's last message",
    "past_contacts": "past campaign contacts",
    "past_returns": "past returns after a campaign",
}


def _decision(conn: Connection, run_id: int, customer_id: str) -> dict[str, Any] | None:
    columns = [Decision.segment, Decision.failure_category, Decision.severity, Decision.p_active,
               Decision.customer_value, Decision.channel, Decision.offer_kind, Decision.offer_value,
               Decision.offer_amount, Decision.offer_cost, Decision.predicted_uplift, Decision.reason,
               Decision.predicted_spend_uplift]  # fmt: skip
    row = conn.execute(
        select(*columns, cast(Decision.features, Text).label("features"), CampaignRun.campaign_id,
               CampaignRun.as_of, CampaignRun.stats)
        .join(CampaignRun, CampaignRun.id == Decision.run_id)
        .where(Decision.run_id == run_id, Decision.customer_id == customer_id)
    ).mappings().first()  # fmt: skip
    return dict(row) if row is not None else None


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.number):
        number = float(value)
        return f"{number:,.0f}" if abs(number) >= 100 or number.is_integer() else f"{number:,.2f}"
    return str(value).replace("_", " ")


def drivers(uplift: DecisionUplift, customer: pd.DataFrame, count: int = DRIVERS) -> list[tuple[str, Any, Any, float]]:
    """The features that move this customer's predicted uplift most, against a typical customer.

    Returns
    -------
    list
        (feature, this customer's value, the typical value, change in uplift it makes), largest first;
        features whose part is negligible are left out.
    """
    base = float(uplift.predict(customer)[0])
    names = [n for n in uplift.reference if n in customer.columns or n == "country"]
    variants = []
    for name in names:
        column = "locale" if name == "country" else name
        typical = uplift.reference[name]
        if name == "country":
            typical = f"xx_{typical}" if typical else None
        variants.append(customer.assign(**{column: [typical]}))
    if not variants:
        return []
    moved = base - uplift.predict(pd.concat(variants, ignore_index=True))
    out = []
    for name, delta in zip(names, moved.tolist(), strict=True):
        if abs(delta) >= NEGLIGIBLE:
            own = country_of(customer["locale"]).iloc[0] if name == "country" else customer[name].iloc[0]
            out.append((name, own, uplift.reference[name], float(delta)))
    return sorted(out, key=lambda d: -abs(d[3]))[:count]


def _spend_line(predicted: float | None, summary: dict[str, Any]) -> str:
    """The predicted incremental spend in the window, or why there is none."""
    if predicted is None or (isinstance(predicted, float) and np.isnan(predicted)):
        note = summary.get("spend_note") or "no spend model"
        return f"predicted spend uplift: none ({note}); the gain counts the customer value alone"
    qini = summary.get("spend_validation_qini") or 0.0
    return (
        f"predicted spend uplift {predicted:+,.2f} in the attribution window (counted × margin in the gain); "
        f"{summary.get('spend_learner', 'spend model')}, Qini on held-out runs {qini:,.2f}"
    )


def uplift_lines(conn: Connection, run_id: int, customer_id: str) -> list[str]:
    """What `winback explain` prints about the uplift behind a decision: the prediction, its drivers, the spend."""
    decided = _decision(conn, run_id, customer_id)
    if decided is None:
        return []
    lines = _return_lines(conn, decided)
    if decided["predicted_uplift"] is None or decided["features"] is None:
        return lines
    return [*lines, _spend_line(decided["predicted_spend_uplift"], (decided["stats"] or {}).get("uplift") or {})]


def _return_lines(conn: Connection, decided: dict[str, Any]) -> list[str]:
    summary = (decided["stats"] or {}).get("uplift") or {}
    predicted = decided["predicted_uplift"]
    if predicted is None or decided["features"] is None:
        note = summary.get("note") or "the run decided without an uplift model"
        return [f"uplift: not predicted for this decision ({note}); it used the per-offer-kind lift"]
    used = MODEL_SOURCE in decided["reason"]
    verdict = "decided with it" if used else "not used for this offer kind: too little evidence, per-offer-kind lift"
    lines = [
        f"predicted uplift {predicted * 100:+.1f} pp on the chance of returning ({verdict}); "
        f"{summary.get('learner', 'uplift model')}, trained on {summary.get('n_training', 0):,} customers of "
        f"{summary.get('runs', 0)} closed run(s), Qini on held-out runs {summary.get('validation_qini') or 0:.4f}"
    ]
    candidate = summary.get("candidate")
    if not isinstance(candidate, int) or not 0 <= candidate < len(DEFAULT_CANDIDATES):
        return lines
    as_of: dt.datetime = utc(decided["as_of"])
    spend = summary.get("spend_candidate")
    known = isinstance(spend, int) and 0 <= spend < len(SPEND_CANDIDATES)
    spend_candidates = (SPEND_CANDIDATES[spend],) if known else SPEND_CANDIDATES[:1]
    uplift = train_decision_uplift(
        conn,
        decided["campaign_id"],
        as_of,
        candidates=(DEFAULT_CANDIDATES[candidate],),
        spend_candidates=spend_candidates,
    )
    if uplift.model is None:
        return [*lines, f"drivers: the model cannot be refitted ({uplift.summary.get('note')})"]
    own = {k: decided[k] for k in ("segment", "failure_category", "severity", "p_active", "customer_value",
                                   "channel", "offer_kind", "offer_value", "offer_amount", "offer_cost")}  # fmt: skip
    customer = pd.DataFrame([own]).join(features_frame([decided["features"]]))
    parts = drivers(uplift, customer)
    if not parts:
        return [*lines, "main drivers: none stands out (close to a typical customer)"]
    words = [
        f"{LABELS.get(name, name.replace('_', ' '))} {_shown(value)} ({delta * 100:+.1f} pp against "
        + ("none, as most customers" if _shown(typical) == "missing" else f"a typical {_shown(typical)}")
        + ")"
        for name, value, typical, delta in parts
    ]
    return [*lines, "main drivers: " + "; ".join(words)]
