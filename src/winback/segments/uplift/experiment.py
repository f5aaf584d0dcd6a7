"""A randomized experiment as the learners see it: checked columns, treatment, outcome and both layouts.

The checks refuse, in one line naming the row, whatever would make an uplift estimate meaningless or a fit
fail deep inside scikit-learn: a treatment that is not 0/1, an outcome that is not a number, an arm too small
to compare, a feature column that is not there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from winback.errors import DataError
from winback.segments.uplift.features import FeatureEncoder, RowLabel, row_number

MIN_ARM_ROWS = 50


def _first_bad(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _shown(value: object) -> str:
    return "missing" if pd.isna(value) else repr(str(value)[:40])  # type: ignore[call-overload]


def check_columns(frame: pd.DataFrame, needed: list[str], what: str = "column") -> None:
    """Refuse a table lacking any of ``needed`` (named, with the columns it does have)."""
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:20])) + (" …" if len(frame.columns) > 20 else "")
        raise DataError(f"no {what}(s) {', '.join(map(repr, missing))} (the columns are: {have})")


def feature_columns(frame: pd.DataFrame, exclude: list[str], features: list[str] | None) -> list[str]:
    """The named features (checked to exist and not to be the id, treatment or outcome), else every other column."""
    if features is None:
        chosen = [c for c in frame.columns if c not in exclude]
    else:
        check_columns(frame, features, "feature column")
        clash = [c for c in features if c in exclude]
        if clash:
            raise DataError(f"feature(s) {', '.join(map(repr, clash))} cannot also be the id, treatment or outcome")
        chosen = list(dict.fromkeys(features))
    if not chosen:
        raise DataError("no feature columns: the table has only the id, treatment and outcome")
    return chosen


def check_experiment(
    frame: pd.DataFrame, treatment: str, outcome: str, row_label: RowLabel = row_number
) -> tuple[np.ndarray, np.ndarray]:
    """Treatment (bool) and outcome (float) arrays, or a DataError naming the first row that breaks a rule.

    Rules: treatment is 0 or 1 (true/false accepted) on every row; outcome is a number on every row; each arm
    has at least :data:`MIN_ARM_ROWS` rows.
    """
    check_columns(frame, [treatment, outcome])
    raw_t = frame[treatment]
    t_num = raw_t.astype(float) if pd.api.types.is_bool_dtype(raw_t) else pd.to_numeric(raw_t, errors="coerce")
    bad = _first_bad(~t_num.isin((0.0, 1.0)).to_numpy())
    if bad is not None:
        raise DataError(f"{row_label(bad)}: treatment column {treatment!r} is {_shown(raw_t.iloc[bad])}, not 0 or 1")
    raw_y = frame[outcome]
    y = raw_y.astype(float) if pd.api.types.is_bool_dtype(raw_y) else pd.to_numeric(raw_y, errors="coerce")
    bad = _first_bad(~np.isfinite(y.to_numpy(dtype=float, na_value=np.nan)))
    if bad is not None:
        raise DataError(f"{row_label(bad)}: outcome column {outcome!r} is {_shown(raw_y.iloc[bad])}, not a number")
    t = t_num.to_numpy(dtype=float) == 1.0
    for arm, count in (("treated (1)", int(t.sum())), ("control (0)", int((~t).sum()))):
        if count < MIN_ARM_ROWS:
            raise DataError(
                f"only {count} {arm} rows in {treatment!r}: an uplift model needs at least {MIN_ARM_ROWS} per arm"
            )
    return t, y.to_numpy(dtype=float)


def is_binary(outcome: np.ndarray) -> bool:
    """A 0/1 outcome (a return) is modelled with classifiers; anything else (spend) with regressors."""
    return bool(np.isin(outcome, (0.0, 1.0)).all())


@dataclass(frozen=True)
class Design:
    """Both feature layouts of the same rows, with treatment, outcome and the known propensity."""

    linear: np.ndarray
    trees: np.ndarray
    categorical: np.ndarray  # which columns of `trees` are categorical codes
    treatment: np.ndarray
    outcome: np.ndarray
    propensity: np.ndarray

    @classmethod
    def build(
        cls,
        encoder: FeatureEncoder,
        frame: pd.DataFrame,
        treatment: np.ndarray,
        outcome: np.ndarray,
        propensity: np.ndarray,
        row_label: RowLabel = row_number,
    ) -> Design:
        """The design of `frame`'s rows, with both feature layouts from `encoder`."""
        return cls(
            encoder.linear_matrix(frame, row_label),
            encoder.tree_matrix(frame, row_label),
            encoder.categorical_mask,
            treatment,
            outcome,
            propensity,
        )

    def x(self, layout: str) -> np.ndarray:
        """The feature matrix of `layout` ("linear" or "trees")."""
        return self.linear if layout == "linear" else self.trees

    def mask(self, layout: str) -> np.ndarray:
        """Categorical columns of the layout (the linear one has none: its levels are one-hot)."""
        return self.categorical if layout == "trees" else np.zeros(self.linear.shape[1], dtype=bool)

    def take(self, rows: np.ndarray) -> Design:
        """The design restricted to `rows` (a fold or the held-out part)."""
        return Design(self.linear[rows], self.trees[rows], self.categorical, self.treatment[rows],
                      self.outcome[rows], self.propensity[rows])  # fmt: skip

    def __len__(self) -> int:
        return len(self.treatment)
