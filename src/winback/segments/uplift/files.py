"""`winback uplift fit` and `winback uplift score` as plain functions over CSV files.

Any randomized experiment file will do: one row per customer, an id, a 0/1 treatment, a numeric outcome, and
any other columns as features (numbers and text, missing values allowed). Problems are refused in one line
naming the file, the row and the id, before anything is written.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winback.errors import ConfigError, DataError
from winback.segments.uplift.experiment import check_columns
from winback.segments.uplift.features import RowLabel
from winback.segments.uplift.selection import fit_uplift
from winback.segments.uplift.store import load_model, save_model


def read_table(path: Path, id_column: str) -> pd.DataFrame:
    """The CSV with its id column kept as text (so '00123' stays '00123'), or a DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype={id_column: str}, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as CSV: {first}") from exc
    if frame.empty:
        raise DataError(f"{path}: no rows")
    try:
        check_columns(frame, [id_column])
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return frame


def row_labels(path: Path, ids: pd.Series) -> RowLabel:
    """'F.csv row 17 (id 'C017')': a data row (1 = the first after the header) and its id."""
    values = ids.to_numpy()
    return lambda i: f"{path.name} row {i + 1} (id {str(values[i])!r})"


def parse_features(text: str | None) -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None stays None (every other column); an empty name is refused."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise DataError(f"--features {text!r}: an empty feature name (stray comma?)")
    return names


def fit_experiment_file(
    experiment: Path,
    id_column: str,
    treatment: str,
    outcome: str,
    features: list[str] | None,
    out: Path,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Read the experiment, fit and validate an uplift model, save it to ``out``; returns the manifest."""
    frame = read_table(experiment, id_column)
    try:
        check_columns(frame, [treatment, outcome])
    except DataError as exc:
        raise DataError(f"{experiment}: {exc}") from None
    try:
        model, report = fit_uplift(
            frame,
            treatment,
            outcome,
            features,
            exclude=(id_column,),
            seed=seed,
            row_label=row_labels(experiment, frame[id_column]),
        )
    except DataError as exc:
        text = str(exc)
        raise DataError(text if text.startswith(experiment.name) else f"{experiment}: {text}") from None
    return save_model(
        model,
        report,
        out,
        source=str(experiment),
        rows=len(frame),
        id=id_column,
        treatment=treatment,
        outcome=outcome,
    )


def score_file(model_dir: Path, customers: Path, id_column: str, out: Path) -> int:
    """Write ``id_column`` and ``uplift`` for every customer, in the input's order; returns the row count."""
    model, _ = load_model(model_dir)
    frame = read_table(customers, id_column)
    try:
        scores = model.score(frame, id_column, row_labels(customers, frame[id_column]))
    except DataError as exc:
        text = str(exc)
        raise DataError(text if text.startswith(customers.name) else f"{customers}: {text}") from None
    scores["uplift"] = np.round(scores["uplift"], 6)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        scores.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot be written ({exc.strerror or exc})") from exc
    return len(scores)
