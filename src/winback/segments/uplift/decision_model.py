"""The uplift model a campaign run decides with, trained at its start from winback's own randomized holdouts.

Data: every closed, tracked run of the campaign (`warehouse.uplift_history`): its treated and held-out
customers, as their decisions saw them (stored features, never what happened afterwards), and whether they
came back inside the attribution window. The treatment was randomized within each (run, segment), with that
cell's treated share as its known propensity. Runs are kept whole when splitting (``groups``), so the
model is checked on runs it never saw, as the next run will be.

When the model decides (the fallback rule): for an offer kind, the model's predicted uplift replaces the
per-offer-kind lift (`segments.learning`) only when

* at least :data:`MIN_HOLDOUT_PER_KIND` held-out and as many treated customers of that kind (the message
  alone counts as the kind ``none``) are in closed, tracked windows, and
* the model ranks better than random on the runs held out from its fit (validation Qini above 0).

Otherwise the kind keeps the per-offer-kind lift, and each decision's reason says which was used.

Incremental spend: beside the return, a second model predicts what the message adds to the customer's spend
inside the attribution window (revenue in the window, treated minus not; each customer's revenue capped at
the :data:`SPEND_CAP_QUANTILE` quantile so that a few large orders do not decide the fit). It is chosen among
:data:`SPEND_CANDIDATES` (ridge-penalised learners, quick on a million rows) and used only where the return
model decides and the spend model, too, ranks better than random on the held-out runs (see
`segments.option_lifts` for the gain it enters).

Speed: at most :data:`MAX_TRAINING_ROWS` customers are used (a random sample, the same for a given state),
and the learner is chosen on at most 100,000 of them (`selection.fit_uplift`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from winback.errors import DataError
from winback.segments.decision_features import features_frame, model_frame
from winback.segments.uplift.learners import Candidate, Linear
from winback.segments.uplift.model import UpliftModel
from winback.segments.uplift.selection import DEFAULT_CANDIDATES, fit_uplift
from winback.warehouse.uplift_history import closed_run_arms, stored_feature_texts

MIN_HOLDOUT_PER_KIND = 200
MAX_TRAINING_ROWS = 200_000
SPEND_CAP_QUANTILE = 0.995
SPEND_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("t", Linear(penalty=1e-2)),
    Candidate("dr", Linear(penalty=1e-2)),
    Candidate("dr", Linear(penalty=1e-4)),
)
SCORING_CHUNK = 250_000  # at least learners.PARALLEL_MIN_ROWS: boosted trees keep both cores
MODEL_SOURCE = "uplift model"
LIFT_SOURCE = "per offer kind"


@dataclass(frozen=True)
class DecisionUplift:
    """A fitted model (or None), which offer kinds it decides for, and what the run stores about it."""

    model: UpliftModel | None
    trusted: frozenset[str] = frozenset()
    summary: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # a typical customer: medians and commonest levels
    spend_model: UpliftModel | None = None  # incremental spend in the window; None: not fitted or not validated

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted uplift (return probability, treated minus not) for decision frames of any run.

        Features the model knows but the frame lacks (a run without failures has no failure columns) are
        missing values, which the model was fitted to handle.
        """
        return self.predict_both(frame)[0]

    def predict_both(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Predicted uplift of the return and of the spend in the window (NaN where there is no such model).

        By chunks of :data:`SCORING_CHUNK` rows: the feature matrices stay small (a million rows' one-hot
        matrix is most of a gigabyte) and each chunk's is built once for both models when they share a layout.
        """
        returns, spends = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
        if self.model is None:
            return returns, spends
        spend_model = self.spend_model
        shared = spend_model is not None and self.model.same_layout(spend_model)
        for start in range(0, len(frame), SCORING_CHUNK):
            part = slice(start, start + SCORING_CHUNK)
            inputs = _with_features(model_frame(frame.iloc[part]), self.model)
            x = self.model.matrix(inputs)
            returns[part] = self.model.learner.predict(x)
            if spend_model is not None:
                spends[part] = spend_model.learner.predict(x if shared else spend_model.matrix(inputs))
        return returns, spends


def _with_features(inputs: pd.DataFrame, model: UpliftModel) -> pd.DataFrame:
    """Features the model knows but the frame lacks, as missing values."""
    absent = [c for c in model.encoder.features if c not in inputs.columns]
    return inputs.assign(**dict.fromkeys(absent, np.nan)) if absent else inputs


def _no_model(note: str, **facts: Any) -> DecisionUplift:
    return DecisionUplift(None, frozenset(), {"used": False, "note": note, **facts})


def training_frame(arms: pd.DataFrame) -> pd.DataFrame:
    """Features, treatment (0/1), outcome (returned, 0/1), run and known propensity, one row per customer."""
    stored = features_frame(arms["features"]).set_axis(arms.index)
    decided = arms.drop(columns=["features"]).join(stored.drop(columns=arms.columns, errors="ignore"))
    frame = model_frame(decided)
    frame["treated"] = (arms["arm"] == "treatment").astype(int).to_numpy()
    frame["returned"] = arms["returned"].astype(int).to_numpy()
    revenue = arms["revenue"].fillna(0.0).clip(lower=0.0).to_numpy(dtype=float)
    cap = float(np.quantile(revenue, SPEND_CAP_QUANTILE)) if len(revenue) else 0.0
    frame["spend"] = np.minimum(revenue, cap)
    frame["run_id"] = arms["run_id"].to_numpy()
    cell = [arms["run_id"], arms["segment"]]
    frame["propensity"] = frame.groupby(cell)["treated"].transform("mean").to_numpy()
    return frame


def evidence_by_kind(arms: pd.DataFrame) -> pd.DataFrame:
    """Treated and held-out customers per offer kind, over the closed runs: what the fallback rule counts."""
    counts = pd.crosstab(arms["offer_kind"].fillna("none"), arms["arm"])
    return counts.reindex(columns=["treatment", "holdout"], fill_value=0).rename_axis(None, axis=1)


def train_decision_uplift(
    conn: Connection,
    campaign_id: str,
    as_of: Any,
    *,
    seed: int = 0,
    min_holdout_per_kind: int = MIN_HOLDOUT_PER_KIND,
    max_rows: int = MAX_TRAINING_ROWS,
    candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES,
    spend_candidates: tuple[Candidate, ...] = SPEND_CANDIDATES,
) -> DecisionUplift:
    """Fit the uplift model a run of ``campaign_id`` at ``as_of`` decides with, from the runs closed by then.

    Parameters
    ----------
    conn
        winback's state (decisions with features, tracked returns).
    min_holdout_per_kind, max_rows, candidates, spend_candidates
        As :func:`fit_decision_models`.

    Returns
    -------
    DecisionUplift
        Without a model when no offer kind has enough evidence or the fit fails on the data; its
        ``summary`` says why, or how the model was chosen and checked. A model fitted in this process on the
    very same closed runs (their rows' fingerprint) with the same settings is reused, not fitted again.
    """
    arms = closed_run_arms(conn, campaign_id, as_of, features=False)  # the sample's features are read below
    settings = (seed, min_holdout_per_kind, max_rows, candidates, spend_candidates)
    # a stored decision never changes (its customer, arm, features): its id and tracked outcome identify the row;
    # numbers only, which hash without factorizing a million strings
    rows = int(pd.util.hash_pandas_object(arms[["decision_id", "returned", "revenue"]], index=False).sum())
    key = (campaign_id, len(arms), rows, settings)
    if key in _FITTED:  # the same closed runs, the same settings: the same model (a re-run, a dry run, the demo)
        return _FITTED[key]
    fitted = fit_decision_models(arms, seed=seed, min_holdout_per_kind=min_holdout_per_kind, max_rows=max_rows,
                                 candidates=candidates, spend_candidates=spend_candidates,
                                 features=lambda ids: stored_feature_texts(conn, ids))  # fmt: skip
    while len(_FITTED) >= FITTED_KEPT:
        del _FITTED[next(iter(_FITTED))]
    _FITTED[key] = fitted
    return fitted


# Fitted models of this process, by their data's fingerprint and settings: a run decided again for the same
# moment (a re-run, a dry run, the demo's policy comparison) reuses the fit instead of repeating it.
FITTED_KEPT = 4
_FITTED: dict[tuple[Any, ...], DecisionUplift] = {}


def fit_decision_models(
    arms: pd.DataFrame,
    *,
    seed: int = 0,
    min_holdout_per_kind: int = MIN_HOLDOUT_PER_KIND,
    max_rows: int = MAX_TRAINING_ROWS,
    candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES,
    spend_candidates: tuple[Candidate, ...] = SPEND_CANDIDATES,
    features: Callable[[pd.Series], list[str | None]] | None = None,
) -> DecisionUplift:
    """The return and spend models fitted on closed runs' randomized customers (`closed_run_arms`).

    Parameters
    ----------
    arms
        One row per treated or held-out customer of the closed runs, with stored features (or, with
        ``features``, their ``decision_id``) and outcomes.
    features
        Reads the stored features of the sampled customers' decisions (by ``decision_id``), when ``arms``
        came without them.
    min_holdout_per_kind
        The fallback rule's threshold (see the module docstring).
    max_rows
        At most this many customers are used (a random sample).
    candidates, spend_candidates
        The learners to choose from, for the return and for the spend (`explain` passes the ones chosen at
        decision time, to refit them quickly).
    """
    if arms.empty:
        return _no_model("no closed, tracked run with stored features yet")
    evidence = evidence_by_kind(arms)
    enough = evidence[(evidence["holdout"] >= min_holdout_per_kind) & (evidence["treatment"] >= min_holdout_per_kind)]
    facts: dict[str, Any] = {
        "runs": int(arms["run_id"].nunique()),
        "customers": len(arms),
        "holdout_by_kind": {str(k): int(v) for k, v in evidence["holdout"].items()},
        "min_holdout_per_kind": min_holdout_per_kind,
    }
    if enough.empty:
        return _no_model(
            f"fewer than {min_holdout_per_kind} closed-window holdout customers of every offer kind", **facts
        )
    if len(arms) > max_rows:
        arms = arms.sample(n=max_rows, random_state=seed).sort_index()
        facts["sampled"] = max_rows
    if "features" not in arms.columns and features is not None:
        arms = arms.assign(features=features(arms["decision_id"])).drop(columns=["decision_id"])
    frame = training_frame(arms)
    runs = int(frame["run_id"].nunique())
    exclude = ("treated", "returned", "spend", "run_id", "propensity")
    # a feature no customer has a value for (no failures in these runs) tells nothing, and trees refuse it
    names = [c for c in frame.columns if c not in exclude and frame[c].notna().any()]
    try:
        model, report = fit_uplift(
            frame,
            "treated",
            "returned",
            names,
            propensity=frame["propensity"].to_numpy(),
            groups="run_id" if runs >= 2 else None,
            validation_share=0.25,
            candidates=candidates,
            seed=seed,
        )
    except DataError as exc:  # an arm too small once split, a constant outcome: decide without the model
        return _no_model(f"the uplift model could not be fitted: {exc}", **facts)
    qini = report.validation_qini
    validated = bool(np.isfinite(qini) and qini > 0)
    trusted = frozenset(str(k) for k in enough.index) if validated else frozenset()
    summary = {
        **facts,
        "used": bool(trusted),
        "note": "" if validated else "the model ranked no better than random on the runs held out from its fit",
        "trusted_kinds": sorted(trusted),
        "learner": report.chosen,
        "candidate": next(i for i, c in enumerate(candidates) if c.name == report.chosen),
        "cv_qini": report.cv_qini,
        "validation_qini": None if not np.isfinite(qini) else qini,
        "validation_qini_low": None if not np.isfinite(report.validation_qini_low) else report.validation_qini_low,
        "validation_qini_high": None if not np.isfinite(report.validation_qini_high) else report.validation_qini_high,
        "n_training": report.n_training,
        "n_validation": report.n_validation,
    }
    spend_model, spend_summary = _spend_model(frame, names, runs, spend_candidates, seed) if trusted else (None, {})
    summary |= spend_summary
    return DecisionUplift(model, trusted, summary, _typical(frame[names]), spend_model)


def _spend_model(
    frame: pd.DataFrame, names: list[str], runs: int, candidates: tuple[Candidate, ...], seed: int
) -> tuple[UpliftModel | None, dict[str, Any]]:
    """The incremental-spend model, fitted as the return's (same rows, runs held out), kept if it ranks above random."""
    try:
        model, report = fit_uplift(
            frame,
            "treated",
            "spend",
            names,
            propensity=frame["propensity"].to_numpy(),
            groups="run_id" if runs >= 2 else None,
            validation_share=0.25,
            candidates=candidates,
            seed=seed,
        )
    except DataError as exc:
        return None, {"spend_used": False, "spend_note": f"the spend model could not be fitted: {exc}"}
    qini = report.validation_qini
    validated = bool(np.isfinite(qini) and qini > 0)
    return (model if validated else None), {
        "spend_used": validated,
        "spend_note": "" if validated else "the spend model ranked no better than random on the held-out runs",
        "spend_learner": report.chosen,
        "spend_candidate": next(i for i, c in enumerate(candidates) if c.name == report.chosen),
        "spend_validation_qini": None if not np.isfinite(qini) else qini,
    }


def _typical(frame: pd.DataFrame) -> dict[str, Any]:
    """A typical customer, for the explanations to compare against: each feature's median or commonest value.

    Missing counts as a value: where most customers have none (a lapsed customer's failure), typical is none.
    """
    out: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if column.isna().mean() > 0.5:
            out[name] = None
        elif pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            out[name] = float(pd.to_numeric(column, errors="coerce").astype(float).median())
        else:
            out[name] = column.dropna().astype(str).value_counts().index[0]
    return out
