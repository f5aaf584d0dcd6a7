"""Uplift: who responds to being contacted, learned from randomized holdouts (see selection.py for how)."""

from winback.reports.uplift_metrics import (
    policy_value,
    qini_coefficient,
    qini_curve,
    qini_interval,
    uplift_by_decile,
)
from winback.segments.uplift.model import FitReport, UpliftModel
from winback.segments.uplift.selection import DEFAULT_CANDIDATES, fit_uplift

__all__ = [
    "DEFAULT_CANDIDATES",
    "FitReport",
    "UpliftModel",
    "fit_uplift",
    "policy_value",
    "qini_coefficient",
    "qini_curve",
    "qini_interval",
    "uplift_by_decile",
]
