"""Cumulative return curves per arm: when, after the contact, customers came back.

The headline lift compares return rates at the end of the measurement window; the curves show how
the gap opened over time (an offer that only pulls forward purchases that would have happened anyway
shows an early gap that closes by the end of the window).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winback.reports.stats import ARMS

RETENTION_COLUMNS: list[str] = ["arm", "day", "n", "returned", "share"]
"""Output columns of :func:`retention_curve`."""


def retention_curve(frame: pd.DataFrame, *, max_days: int = 30) -> pd.DataFrame:
    """Cumulative share of each arm's considered customers who returned by day 0..``max_days``.

    Input: one row per considered customer with ``arm`` ('treatment' | 'holdout') and
    ``days_to_return`` (days from contact — or from the would-be contact for the holdout — to the
    first return; NaN when the customer did not return within the window). A return counts on day
    ``d`` when ``days_to_return <= d``, so a return after 2.5 days appears from day 3.

    Output: one row per (arm, day) with ``n`` (customers in the arm), ``returned`` (cumulative count)
    and ``share`` (``returned / n``); arms in the order treatment, holdout, only those present.
    """
    missing = [c for c in ("arm", "days_to_return") if c not in frame.columns]
    if missing:
        raise ValueError(f"retention_curve: missing required column(s): {', '.join(map(repr, missing))}")
    if int(max_days) != max_days or max_days < 0:
        raise ValueError(f"max_days must be a non-negative integer, got {max_days!r}")
    arms = frame["arm"]
    unknown = sorted(set(arms.dropna().astype(str)) - set(ARMS))
    if unknown or arms.isna().any():
        raise ValueError(f"retention_curve: column 'arm' must be 'treatment' or 'holdout', found {unknown}")
    days = pd.to_numeric(frame["days_to_return"]).astype(float).to_numpy()
    if (days < 0).any():
        raise ValueError("retention_curve: 'days_to_return' cannot be negative")

    grid = np.arange(int(max_days) + 1)
    parts: list[pd.DataFrame] = []
    for arm in ARMS:
        mask = (arms == arm).to_numpy()
        n = int(mask.sum())
        if n == 0:
            continue
        arm_days = np.sort(days[mask][~np.isnan(days[mask])])
        returned = np.searchsorted(arm_days, grid, side="right")
        parts.append(
            pd.DataFrame(
                {
                    "arm": arm,
                    "day": grid,
                    "n": n,
                    "returned": returned.astype(int),
                    "share": returned / n,
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(RETENTION_COLUMNS, _DTYPES, strict=True)})
    return pd.concat(parts, ignore_index=True)[RETENTION_COLUMNS]


_DTYPES: tuple[str, ...] = ("str", "int64", "int64", "int64", "float64")
