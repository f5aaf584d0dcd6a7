"""A fitted uplift model and the evidence it was chosen and checked on: what is saved, scored and reported."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winback.segments.uplift.features import FeatureEncoder, RowLabel, row_number
from winback.segments.uplift.learners import Candidate, MetaLearner


@dataclass
class UpliftModel:
    """Feature layout + the chosen meta-learner, fitted; ``predict`` gives treated-minus-control outcome."""

    encoder: FeatureEncoder
    candidate: Candidate
    learner: MetaLearner
    binary: bool

    def predict(self, frame: pd.DataFrame, row_label: RowLabel = row_number) -> np.ndarray:
        """Predicted uplift per row, in the outcome's units (return probability points, or spend).

        Raises DataError when a feature is missing or a numeric feature holds text (naming the row).
        """
        return self.learner.predict(self.matrix(frame, row_label))

    def matrix(self, frame: pd.DataFrame, row_label: RowLabel = row_number) -> np.ndarray:
        """The features of `frame` in the layout the learner takes (checked as :meth:`predict` says)."""
        self.encoder.check_columns(frame)
        if self.candidate.base.layout == "linear":
            return self.encoder.linear_matrix(frame, row_label)
        return self.encoder.tree_matrix(frame, row_label)

    def same_layout(self, other: UpliftModel) -> bool:
        """Whether `other` takes the very same matrix (same features, levels and scales, same layout)."""
        return self.candidate.base.layout == other.candidate.base.layout and self.encoder == other.encoder

    def score(self, frame: pd.DataFrame, id_column: str, row_label: RowLabel = row_number) -> pd.DataFrame:
        """``id_column`` and ``uplift``: one row per input row, in the same order."""
        return pd.DataFrame({id_column: frame[id_column].to_numpy(), "uplift": self.predict(frame, row_label)})


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN to None (JSON has no NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A small table as JSON-ready rows."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


@dataclass(frozen=True)
class FitReport:
    """How the model was chosen (cross-validated Qini per candidate) and how it did on rows it never saw.

    ``validation_*`` are computed on the held-out part (``n_validation`` rows) with the model fitted on the
    training part only: the honest estimate. NaN/empty when no rows were held out.
    """

    chosen: str
    outcome_kind: str  # "binary" | "numeric"
    n_training: int
    n_selection: int
    n_validation: int
    treated_share: float
    folds: int
    cv: pd.DataFrame  # candidate, mean_qini, se_qini, chosen
    cv_qini: float
    cv_qini_se: float
    validation_qini: float
    validation_qini_low: float
    validation_qini_high: float
    deciles: pd.DataFrame
    targeting: pd.DataFrame  # share, policy (uplift | random), incremental per 1,000 targeted with CI

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values: the scalars plus the selection, decile and targeting tables as records."""
        scalars = {
            k: _plain(getattr(self, k))
            for k in ("chosen", "outcome_kind", "n_training", "n_selection", "n_validation", "treated_share",
                      "folds", "cv_qini", "cv_qini_se", "validation_qini", "validation_qini_low",
                      "validation_qini_high")
        }  # fmt: skip
        return scalars | {
            "candidates": records(self.cv),
            "validation_deciles": records(self.deciles),
            "validation_targeting": records(self.targeting),
        }
