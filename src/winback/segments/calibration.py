"""How well the activity model predicts: fit on the history up to a cut-off, compare with what happened after.

The campaign runs this on its first customers in id order (`stages.calibration_check.CALIBRATION_CUSTOMERS`:
a fixed slice, so it costs the same at every run size) and stores the result with the model's version, so
a marketer can see whether the p_active numbers in the reasons deserve trust.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from winback.segments.bgnbd import expected_purchases, fit_bgnbd

DAYS_PER_PERIOD = 7.0


def model_version(params: dict[str, float], n_customers: int, as_of: str) -> str:
    """A short stable id for a fitted model: its parameters, its data size and its date."""
    blob = json.dumps({"p": {k: round(v, 6) for k, v in sorted(params.items())}, "n": n_customers, "t": as_of})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def holdout_check(calibration_rfm: pd.DataFrame, actual_repeats: pd.Series, holdout_days: float) -> dict[str, object]:
    """Fit BG/NBD on `calibration_rfm` (days) and compare predicted with actual purchases in the holdout.

    Parameters
    ----------
    calibration_rfm
        customer_id, frequency, recency, T (days) as of the cut-off.
    actual_repeats
        Orders each customer placed after the cut-off, indexed by customer_id (missing = 0).
    """
    f = calibration_rfm["frequency"].to_numpy(dtype=float)
    rec = calibration_rfm["recency"].to_numpy(dtype=float) / DAYS_PER_PERIOD
    t = calibration_rfm["T"].to_numpy(dtype=float) / DAYS_PER_PERIOD
    fit = fit_bgnbd(f, rec, t)
    predicted = expected_purchases(fit, holdout_days / DAYS_PER_PERIOD, f, rec, t)
    actual = calibration_rfm["customer_id"].map(actual_repeats).fillna(0).to_numpy(dtype=float)
    bucket = np.minimum(f, 7).astype(int)
    by_frequency = []
    for b in range(8):
        members = bucket == b
        if members.any():
            by_frequency.append({
                "frequency": f"{b}+" if b == 7 else str(b),
                "customers": int(members.sum()),
                "predicted": round(float(predicted[members].mean()), 4),
                "actual": round(float(actual[members].mean()), 4),
            })  # fmt: skip
    total_pred, total_act = float(predicted.sum()), float(actual.sum())
    error = (total_pred - total_act) / total_act if total_act else float("nan")
    return {
        "customers": len(calibration_rfm),
        "holdout_days": holdout_days,
        "params": {"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b},
        "converged": fit.converged,
        "predicted_total": round(total_pred, 1),
        "actual_total": round(total_act, 1),
        "relative_error": round(error, 4),
        "mae": round(float(np.abs(predicted - actual).mean()), 4),
        "by_frequency": by_frequency,
        "verdict": "good" if abs(error) <= 0.1 else "fair" if abs(error) <= 0.25 else "poor",
    }
