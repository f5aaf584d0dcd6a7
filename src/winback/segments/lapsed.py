"""Lapsed customers: overdue against their own buying rhythm, or unlikely to still be active."""

from __future__ import annotations

import numpy as np
import pandas as pd

from winback.config import LapsedRule
from winback.segments.text import str_each

REQUIRED = ("customer_id", "frequency", "recency", "days_since_last", "p_active")


def own_mean_gap(rfm: pd.DataFrame, typical_gap: float | None = None) -> pd.Series:
    """Each customer's mean days between orders; one-time buyers get the population's median gap.

    `typical_gap` is that median when `rfm` is only part of the population (a partition of a run).
    """
    repeat = rfm["frequency"] > 0
    gap = (rfm["recency"] / rfm["frequency"].where(repeat)).where(repeat)
    if typical_gap is None:
        typical_gap = float(gap[repeat].median()) if repeat.any() else 90.0
    return gap.fillna(typical_gap).clip(lower=1.0)


def lapsed_segment(scored: pd.DataFrame, rule: LapsedRule, typical_gap: float | None = None) -> pd.DataFrame:
    """Rows of `scored` that are lapsed, with `overdue_ratio` and a `lapsed_because` phrase.

    Parameters
    ----------
    scored
        One row per customer: customer_id, frequency, recency, days_since_last, p_active.
    rule
        Thresholds from the campaign config.
    typical_gap
        The whole run's median gap between orders, when `scored` is only part of the run.
    """
    missing = [c for c in REQUIRED if c not in scored.columns]
    if missing:
        raise ValueError(f"lapsed_segment: required columns missing: {', '.join(missing)}")
    gap = own_mean_gap(scored, typical_gap)
    overdue_ratio = scored["days_since_last"] / gap
    in_window = scored["days_since_last"].between(rule.min_days_since_last, rule.max_days_since_last)
    overdue = overdue_ratio >= rule.overdue_factor
    fading = scored["p_active"].between(rule.min_p_active, rule.max_p_active, inclusive="left")
    picked = in_window & (overdue | fading)
    out = scored.loc[picked].copy()
    out["overdue_ratio"] = overdue_ratio[picked]
    out["lapsed_because"] = _because(out, overdue[picked].to_numpy())
    return out


def _because(lapsed: pd.DataFrame, overdue: np.ndarray) -> np.ndarray:
    """'overdue 2.3x own gap' or 'p_active 0.12': each phrase built only for the customers it describes."""
    out = np.empty(len(lapsed), dtype=object)
    out[overdue] = "overdue " + str_each(lapsed["overdue_ratio"].round(1).to_numpy()[overdue]) + "x own gap"
    out[~overdue] = "p_active " + str_each(lapsed["p_active"].round(2).to_numpy()[~overdue])
    return out
