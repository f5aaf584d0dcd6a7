"""Choose the uplift learner by cross-validated Qini, then check the choice on rows it never saw.

Effects of a marketing message are small next to the noise, so a model that predicts the outcome well can
still rank customers by uplift no better than chance. The learners and their regularisation are therefore
compared by what matters, the Qini coefficient on the folds they were not fitted on, and among those within
one standard error of the best the simplest is kept (the one-standard-error rule of Hastie, Tibshirani &
Friedman, ESL §7.10): a well-regularised model that is as good within the noise is the safer bet.

Honest validation: a share of the rows (or of the groups, e.g. campaign runs, when ``groups`` is given) is
set aside first; selection and fitting never see it, and the Qini, the decile table and the targeting
comparison in the report are computed on it. The model returned is the one fitted on the training part,
so the figures reported are those of the model that will be used.

Selection runs on at most ``max_selection_rows`` of the training rows (a stratified sample) so that fitting
half a million rows stays within seconds; the chosen learner is then fitted on every training row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from winback.errors import DataError
from winback.reports.uplift_metrics import policy_value, qini_coefficient, qini_interval, uplift_by_decile
from winback.segments.uplift.experiment import Design, check_experiment, feature_columns, is_binary
from winback.segments.uplift.features import FeatureEncoder, RowLabel, row_number
from winback.segments.uplift.learners import Candidate, Linear, Trees
from winback.segments.uplift.model import FitReport, UpliftModel

# Simplest first: the one-standard-error rule keeps the earliest candidate within reach of the best.
# Scoring a tree ensemble costs time per tree per customer (~1.5 s per 60 shallow trees per million on this
# 2-core machine), so each candidate scores with at most 60 trees: learners with two models get 30 each.
DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("t", Linear(penalty=1e-2)),
    Candidate("dr", Linear(penalty=1e-2)),
    Candidate("t", Linear(penalty=1e-4)),
    Candidate("dr", Linear(penalty=1e-4)),
    Candidate("t", Trees(max_depth=3, leaf_share=0.002, max_iter=30, learning_rate=0.2)),
    Candidate("dr", Trees(max_depth=2, leaf_share=0.01, max_iter=60, learning_rate=0.1)),
    Candidate("x", Trees(max_depth=2, leaf_share=0.01, max_iter=30, learning_rate=0.2)),
)
TARGETING_SHARES = (0.1, 0.2, 0.3, 0.5)


def strata_of(treatment: np.ndarray, outcome: np.ndarray, folds: int) -> np.ndarray:
    """Arm × outcome (0/1 outcomes) or arm alone, so every fold sees both arms (and returners) in proportion.

    Arm alone when a cell is too small to be spread over the folds (few returners in the control arm).
    """
    t = treatment.astype(int)
    if not is_binary(outcome):
        return t
    cells = t * 2 + outcome.astype(int)
    return cells if np.bincount(cells, minlength=4)[np.unique(cells)].min() >= folds else t


def _holdout_split(
    strata: np.ndarray, groups: np.ndarray | None, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    index = np.zeros(len(strata))
    if groups is not None:
        if np.unique(groups).size < 2:
            raise DataError("honest validation by group needs at least 2 groups (e.g. 2 campaign runs)")
        splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        return next(splitter.split(index, groups=groups))
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
    return next(splitter.split(index, strata))


def cross_validated_qini(
    candidates: tuple[Candidate, ...],
    design: Design,
    *,
    folds: int = 3,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> pd.DataFrame:
    """Qini coefficient of every candidate on every fold it was not fitted on: candidate, name, fold, qini."""
    binary = is_binary(design.outcome)
    placeholder = np.zeros(len(design))
    if groups is not None and np.unique(groups).size >= folds:
        splits = list(GroupKFold(n_splits=folds).split(placeholder, groups=groups))
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(placeholder, strata_of(design.treatment, design.outcome, folds)))
    rows = []
    for i, candidate in enumerate(candidates):
        layout = candidate.base.layout
        for k, (fit_rows, test_rows) in enumerate(splits):
            train, test = design.take(fit_rows), design.take(test_rows)
            learner = candidate.build(binary, design.mask(layout), seed)
            learner.fit(train.x(layout), train.treatment, train.outcome, train.propensity)
            score = learner.predict(test.x(layout))
            rows.append({"candidate": i, "name": candidate.name, "fold": k,
                         "qini": qini_coefficient(score, test.treatment, test.outcome)})  # fmt: skip
    return pd.DataFrame(rows, columns=["candidate", "name", "fold", "qini"])


def choose(cv: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    """The simplest candidate whose mean Qini is within one standard error of the best; and the summary table."""
    summary = cv.groupby(["candidate", "name"], sort=True)["qini"].agg(["mean", "std", "count"]).reset_index()
    summary["se_qini"] = (summary["std"] / np.sqrt(summary["count"])).fillna(0.0)
    summary = summary.rename(columns={"mean": "mean_qini"})[["candidate", "name", "mean_qini", "se_qini"]]
    best = summary.loc[summary["mean_qini"].idxmax()]
    reach = best["mean_qini"] - best["se_qini"]
    chosen = int(summary.loc[summary["mean_qini"] >= reach, "candidate"].min())
    summary["chosen"] = summary["candidate"] == chosen
    return chosen, summary


def _targeting(score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> pd.DataFrame:
    """Incremental outcome per 1,000 targeted, targeting by the model and at random, at several budgets."""
    rows = []
    for share in TARGETING_SHARES:
        for policy, ranking in (("uplift", score), ("random", None)):
            v = policy_value(ranking, treatment, outcome, share=share)
            rows.append({"share": share, "policy": policy, "n_targeted": int(v["n_targeted"]),
                         "per_1000": v["uplift"] * 1000, "per_1000_low": v["low"] * 1000,
                         "per_1000_high": v["high"] * 1000})  # fmt: skip
    return pd.DataFrame(rows)


def fit_uplift(
    frame: pd.DataFrame,
    treatment: str,
    outcome: str,
    features: list[str] | None = None,
    *,
    exclude: tuple[str, ...] = (),
    propensity: float | np.ndarray | None = None,
    groups: str | None = None,
    validation_share: float = 0.25,
    folds: int = 3,
    max_selection_rows: int = 100_000,
    candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES,
    seed: int = 0,
    row_label: RowLabel = row_number,
) -> tuple[UpliftModel, FitReport]:
    """Fit an uplift model of ``outcome`` on a randomized experiment; see the module docstring for how.

    Parameters
    ----------
    frame
        One row per customer in the experiment (treated and control).
    treatment, outcome
        Column names: treatment 0/1 (randomized), outcome a number (0/1 return, or spend).
    features
        Feature columns; default every column but the treatment, outcome, ``groups`` and ``exclude`` (the id).
    propensity
        Probability of treatment, known from the randomization: one value or one per row. Default: the
        treated share of ``frame``.
    groups
        Column whose values are kept together when splitting (campaign runs): validation is then on unseen
        groups, as the next run will be.
    validation_share
        Share of rows (or groups) held out for the honest report; 0 fits on every row and reports no
        validation.

    Returns
    -------
    (UpliftModel, FitReport)
        The model fitted on the training part, and the selection and validation evidence.
    """
    t, y = check_experiment(frame, treatment, outcome, row_label)
    names = feature_columns(frame, [treatment, outcome, *exclude, *([groups] if groups else [])], features)
    e = np.full(len(t), t.mean()) if propensity is None else np.broadcast_to(np.asarray(propensity, float), t.shape)
    if not ((e > 0) & (e < 1)).all():
        raise DataError("propensity (the chance of treatment) must lie strictly between 0 and 1")
    group_values = frame[groups].to_numpy() if groups else None
    binary = is_binary(y)
    strata = strata_of(t, y, folds)
    if validation_share > 0:
        train_rows, valid_rows = _holdout_split(strata, group_values, validation_share, seed)
    else:
        train_rows, valid_rows = np.arange(len(t)), np.zeros(0, dtype=int)
    train_frame = frame.iloc[train_rows]
    encoder = FeatureEncoder.fit(train_frame, names)
    train = Design.build(encoder, train_frame, t[train_rows], y[train_rows], e[train_rows], row_label)

    select_rows = np.arange(len(train))
    if len(train) > max_selection_rows:
        sampler = StratifiedShuffleSplit(n_splits=1, train_size=max_selection_rows, random_state=seed)
        select_rows = np.sort(next(sampler.split(select_rows, strata[train_rows]))[0])
    select_groups = group_values[train_rows][select_rows] if group_values is not None else None
    cv = cross_validated_qini(candidates, train.take(select_rows), folds=folds, seed=seed, groups=select_groups)
    chosen, summary = choose(cv)
    candidate = candidates[chosen]
    layout = candidate.base.layout
    learner = candidate.build(binary, train.mask(layout), seed)
    learner.fit(train.x(layout), train.treatment, train.outcome, train.propensity)
    model = UpliftModel(encoder, candidate, learner, binary)

    nan = float("nan")
    v_qini = v_low = v_high = nan
    deciles, targeting = pd.DataFrame(), pd.DataFrame()
    if len(valid_rows):
        score = model.predict(frame.iloc[valid_rows], row_label)
        vt, vy = t[valid_rows], y[valid_rows]
        v_qini = qini_coefficient(score, vt, vy)
        v_low, v_high = qini_interval(score, vt, vy, seed=seed, replicates=100)
        deciles, targeting = uplift_by_decile(score, vt, vy), _targeting(score, vt, vy)
    best = summary.loc[summary["chosen"]].iloc[0]
    report = FitReport(
        chosen=candidate.name,
        outcome_kind="binary" if binary else "numeric",
        n_training=len(train_rows),
        n_selection=len(select_rows),
        n_validation=len(valid_rows),
        treated_share=float(t.mean()),
        folds=folds,
        cv=summary,
        cv_qini=float(best["mean_qini"]),
        cv_qini_se=float(best["se_qini"]),
        validation_qini=v_qini,
        validation_qini_low=v_low,
        validation_qini_high=v_high,
        deciles=deciles,
        targeting=targeting,
    )
    return model, report
