"""Aggrieved customers: recent or unresolved service failures, weighted by severity."""

from __future__ import annotations

import pandas as pd

from winback.config import AggrievedRule

FAILURE_COLUMNS = (
    "failure_id",
    "customer_id",
    "order_id",
    "category",
    "severity",
    "occurred_at",
    "resolved_at",
)


SEGMENT_COLUMNS = [
    "customer_id", "failure_id", "order_id", "failure_category", "severity", "occurred_at", "resolved_at",
    "unresolved", "description", "order_amount", "grievance", "failures",
]  # fmt: skip


def aggrieved_segment(failures: pd.DataFrame, rule: AggrievedRule) -> pd.DataFrame:
    """One row per aggrieved customer, describing the failure the apology must name.

    The failure kept per customer is the worst one: unresolved before resolved, then by severity, then the
    most recent. `grievance` adds up every qualifying failure's severity, counting unresolved or slowly
    resolved ones ("badly closed") 1.5 times.

    Returns columns: customer_id, failure_id, order_id, failure_category, severity, occurred_at,
    resolved_at, unresolved, description, order_amount, grievance, failures.
    """
    missing = [c for c in FAILURE_COLUMNS if c not in failures.columns]
    if missing:
        raise ValueError(f"aggrieved_segment: required columns missing: {', '.join(missing)}")
    f = failures.loc[failures["severity"] >= rule.min_severity].copy()
    if f.empty:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    f["unresolved"] = f["resolved_at"].isna()
    slow = (f["resolved_at"] - f["occurred_at"]).dt.total_seconds() > rule.slow_resolution_days * 86400
    f["weight"] = f["severity"] * (1.0 + 0.5 * (f["unresolved"] | slow.fillna(False)))
    totals = f.groupby("customer_id").agg(grievance=("weight", "sum"), failures=("failure_id", "count"))
    worst = f.sort_values(
        ["customer_id", "unresolved", "severity", "occurred_at"], ascending=[True, False, False, False]
    ).drop_duplicates("customer_id")
    out = worst.merge(totals, left_on="customer_id", right_index=True).rename(columns={"category": "failure_category"})
    if "description" not in out.columns:
        out["description"] = None
    if "order_amount" not in out.columns:
        out["order_amount"] = float("nan")
    return out[SEGMENT_COLUMNS].reset_index(drop=True)
