"""A fitted uplift model on disk: the model (joblib) and a manifest a person can read (JSON).

MODEL_DIR/
    model.joblib     the UpliftModel (feature layout + fitted learner); a pickle: load only models you made
    manifest.json    features (kind, dtype, levels), the chosen learner, cross-validated and held-out Qini

Both files are written under temporary names and renamed, the manifest last, so a directory with a manifest
always holds a complete model, even if a fit was interrupted while replacing an earlier one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import joblib
import sklearn

from winback.errors import ConfigError
from winback.segments.uplift.model import FitReport, UpliftModel

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
FORMAT = 1


def manifest_for(model: UpliftModel, report: FitReport, **context: Any) -> dict[str, Any]:
    """What the model is, what it needs and how well it ranked; ``context`` adds e.g. the source file."""
    base = model.candidate.base
    summary = report.as_dict()
    return {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scikit_learn": sklearn.__version__,
        **context,
        "outcome_kind": report.outcome_kind,
        "features": model.encoder.describe(),
        "learner": {
            "name": report.chosen,
            "meta": model.candidate.learner,
            "base": asdict(base),
        },
        "cv_qini": summary["cv_qini"],
        "validation_qini": summary["validation_qini"],  # None when no rows were held out
        "report": summary,
    }


def _write_atomically(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_model(model: UpliftModel, report: FitReport, directory: Path, **context: Any) -> dict[str, Any]:
    """Write ``model.joblib`` and ``manifest.json`` into ``directory`` (created if needed); returns the manifest."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the model folder {directory}: {exc.strerror or exc}") from exc
    manifest = manifest_for(model, report, **context)
    text = json.dumps(manifest, indent=2, allow_nan=False)
    _write_atomically(directory / MODEL_FILE, lambda p: joblib.dump(model, p, compress=3))
    _write_atomically(directory / MANIFEST_FILE, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return manifest


def load_model(directory: Path) -> tuple[UpliftModel, dict[str, Any]]:
    """The model and its manifest, or a ConfigError saying what is wrong with the folder."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ConfigError(f"no uplift model in {directory} (no {MANIFEST_FILE}): fit one with `winback uplift fit`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{manifest_path}: not a format-{FORMAT} uplift model manifest: refit the model")
    try:
        model = joblib.load(directory / MODEL_FILE)
    except Exception as exc:  # a pickle can fail in many ways; each means the same to the user
        made_with = manifest.get("scikit_learn", "an unknown version")
        raise ConfigError(
            f"{directory / MODEL_FILE}: cannot be loaded ({type(exc).__name__}); it was made with scikit-learn "
            f"{made_with}, this is {sklearn.__version__}: refit the model"
        ) from exc
    if not isinstance(model, UpliftModel):
        raise ConfigError(f"{directory / MODEL_FILE}: not an uplift model")
    return model, manifest
