"""Turn any table of customer attributes into the two numeric matrices the base learners take.

Numeric columns (numbers and booleans) and categorical ones (anything else, read as text) are told apart
from their dtype when the model is fitted, and the same layout is applied when scoring:

* for the trees: numbers as they are (missing stays NaN, which histogram gradient boosting routes on its
  own) and each categorical column as an integer code of its level, rare and unseen levels sharing one
  "other" code, missing as NaN;
* for the linear models: numbers with missing values set to the training median plus a missing flag, then
  standardised and clipped at ±5 (a few extreme spenders must not decide a coefficient), and one column
  per frequent level (missing: none of them set).

The layout is a few lines of pandas rather than a scikit-learn ColumnTransformer so that it can state its
levels in the model's manifest, name the row and column of a value that is not a number, and encode a
million customers in a fraction of a second (a pandas index lookup hashes; the encoders sort).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from winback.errors import DataError

MAX_LEVELS = 50
MIN_LEVEL_COUNT = 20
CLIP_SD = 5.0

RowLabel = Callable[[int], str]


def row_number(position: int) -> str:
    """The default way to name a row in an error: its 1-based position."""
    return f"row {position + 1}"


def is_numeric_column(column: pd.Series) -> bool:
    """Numbers and booleans are numeric features; text, dates and anything else are categorical."""
    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _as_text(column: pd.Series) -> pd.Series:
    """Category labels as text, missing kept missing (so 'DE' and a numeric 7 alike become labels)."""
    if isinstance(column.dtype, pd.StringDtype):  # already text (pandas' default for text columns)
        return column
    out = column.astype(object)
    present = out.notna()
    return out.where(~present, out[present].map(str)) if present.any() else out


@dataclass(frozen=True)
class FeatureEncoder:
    """The feature layout learned from the training table; apply it with :meth:`tree_matrix`/:meth:`linear_matrix`."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    medians: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    flagged: tuple[str, ...] = ()  # numeric columns with missing values at fit time: they get a missing flag
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)  # as read at fit time, for the manifest

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str]) -> FeatureEncoder:
        """Learn which features are numeric, their medians and scales, and each categorical's frequent levels."""
        numeric = tuple(c for c in features if is_numeric_column(frame[c]))
        categorical = tuple(c for c in features if c not in numeric)
        medians, means, scales, flagged = {}, {}, {}, []
        for col in numeric:
            values = pd.Series(cls._numbers(frame[col], col, row_number))
            median = float(values.median()) if values.notna().any() else 0.0
            filled = values.fillna(median)
            medians[col], means[col] = median, float(filled.mean())
            sd = float(filled.std(ddof=0))
            scales[col] = sd if sd > 0 else 1.0
            if values.isna().any():
                flagged.append(col)
        levels = {}
        for col in categorical:
            counts = _as_text(frame[col]).value_counts(dropna=True)
            counts = counts[counts >= MIN_LEVEL_COUNT].sort_index(kind="stable")
            top = counts.sort_values(ascending=False, kind="stable").index[:MAX_LEVELS]
            levels[col] = tuple(sorted(str(v) for v in top))
        dtypes = {c: str(frame[c].dtype) for c in features}
        return cls(numeric, categorical, medians, means, scales, tuple(flagged), levels, dtypes)

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature the encoder uses, numeric first."""
        return (*self.numeric, *self.categorical)

    def check(self, frame: pd.DataFrame, row_label: RowLabel = row_number) -> None:
        """Refuse a table lacking a feature, or with text where a number is expected (naming row and value)."""
        self.check_columns(frame)
        for col in self.numeric:
            self._numbers(frame[col], col, row_label)

    def check_columns(self, frame: pd.DataFrame) -> None:
        """Refuse a table lacking a feature (the matrices refuse text where a number is expected)."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise DataError(f"missing feature column(s) the model needs: {', '.join(map(repr, missing))}")

    @staticmethod
    def _numbers(column: pd.Series, name: str, row_label: RowLabel) -> np.ndarray:
        """The column as floats, infinities as missing; text that is not a number is refused."""
        if is_numeric_column(column):
            values = column.to_numpy(dtype=float, na_value=np.nan)
        else:
            parsed = pd.to_numeric(column, errors="coerce")
            bad = parsed.isna().to_numpy() & column.notna().to_numpy()
            if bad.any():
                at = int(np.flatnonzero(bad)[0])
                raise DataError(f"{row_label(at)}: feature {name!r} is {str(column.iloc[at])[:40]!r}, not a number")
            values = parsed.to_numpy(dtype=float, na_value=np.nan)
        return np.where(np.isinf(values), np.nan, values)

    def _codes(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        """Level index per row: 0..L-1 for known levels, L for any other value, -1 for missing.

        Each distinct value is read as text once (a million rows hold a handful of countries), not each row.
        """
        codes, uniques = pd.factorize(frame[col], use_na_sentinel=True)
        levels = self.levels[col]
        known = pd.Index(levels, dtype=object).get_indexer(_as_text(pd.Series(uniques, dtype=object)))
        known = np.where(known < 0, len(levels), known).astype(np.int64)
        return np.where(codes < 0, -1, known[np.maximum(codes, 0)] if known.size else -1).astype(np.int64)

    def tree_matrix(self, frame: pd.DataFrame, row_label: RowLabel = row_number) -> np.ndarray:
        """Numbers as they are and categorical codes, NaN for missing: the gradient-boosting layout."""
        out = np.empty((len(frame), len(self.numeric) + len(self.categorical)))
        for i, col in enumerate(self.numeric):
            out[:, i] = self._numbers(frame[col], col, row_label)
        for i, col in enumerate(self.categorical, start=len(self.numeric)):
            codes = self._codes(frame, col)
            out[:, i] = np.where(codes < 0, np.nan, codes)
        return out

    @property
    def categorical_mask(self) -> np.ndarray:
        """Which columns of :meth:`tree_matrix` are categorical codes."""
        return np.array([False] * len(self.numeric) + [True] * len(self.categorical), dtype=bool)

    def linear_matrix(self, frame: pd.DataFrame, row_label: RowLabel = row_number) -> np.ndarray:
        """Standardised, clipped numbers with missing flags, and one-hot frequent levels: the linear layout.

        Filled in place, column by column, into one matrix: no per-feature blocks stacked afterwards.
        """
        width = len(self.numeric) + len(self.flagged) + sum(len(self.levels[c]) + 1 for c in self.categorical)
        out = np.zeros((len(frame), width), order="F")
        at = 0
        for col in self.numeric:
            values = self._numbers(frame[col], col, row_label)
            missing = np.isnan(values)
            values[missing] = self.medians[col]
            np.clip((values - self.means[col]) / self.scales[col], -CLIP_SD, CLIP_SD, out=out[:, at])
            at += 1
            if col in self.flagged:
                out[:, at] = missing
                at += 1
        for col in self.categorical:
            codes = self._codes(frame, col)
            present = np.flatnonzero(codes >= 0)
            out[present, at + codes[present]] = 1.0
            at += len(self.levels[col]) + 1
        return out

    def describe(self) -> list[dict[str, object]]:
        """One entry per feature for the manifest: name, kind, and the median or the levels learned."""
        out: list[dict[str, object]] = [
            {"name": c, "kind": "numeric", "dtype": self.dtypes.get(c), "median": self.medians[c],
             "missing_flag": c in self.flagged}
            for c in self.numeric
        ]  # fmt: skip
        out += [
            {"name": c, "kind": "categorical", "dtype": self.dtypes.get(c), "levels": list(self.levels[c])}
            for c in self.categorical
        ]
        return out
