"""Meta-learners: uplift (treated-minus-control outcome) from ordinary, well-regularised scikit-learn models.

Three ways to turn outcome models into an effect estimate (Künzel et al. 2019, PNAS 116:4156; Kennedy 2023,
"Towards optimal doubly robust estimation of heterogeneous causal effects"):

* T-learner: one outcome model per arm; uplift = μ1(x) − μ0(x). Simple, but the difference of two noisy
  models is noisier still, which the selection by Qini will notice when effects are small.
* X-learner: the T-learner's models impute each customer's missing outcome; an effect model per arm is
  fitted to the imputed effects and the two are averaged, weighted by the treated share.
* DR-learner: cross-fitted outcome models give each customer a doubly robust pseudo-outcome (whose mean
  given x is the uplift, because treatment was randomized with known probability); one effect model is
  fitted to it. With outcome models set to zero it is the transformed-outcome method.

Base learners come in two layouts (see features.py): penalised linear models (logistic regression for a 0/1
outcome, ridge otherwise), whose penalty is stated per customer so one grid fits every sample size, and
shallow histogram gradient boosting with large leaves and early stopping. Treatment was randomized, so
the propensity is the known treated share (per customer when runs held out different shares).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import ThreadpoolController

EARLY_STOPPING_MIN_ROWS = 2_000
# Below this many rows gradient boosting runs on one thread: its many short parallel sections cost more in
# thread hand-offs than they save, ten times more on a busy 2-core machine (0.7 s against 0.07 s at 20k rows).
PARALLEL_MIN_ROWS = 200_000


@cache
def _threadpools() -> ThreadpoolController:
    """The process's thread pools, found once.

    Each `threadpool_limits` call would scan the loaded libraries again: ~10 ms, 1.5 s of a demo-sized fit's
    150 limits.
    """
    return ThreadpoolController()


def threads_for(rows: int) -> AbstractContextManager[Any]:
    """One OpenMP thread for small inputs, the default for large ones."""
    return _threadpools().limit(limits=1, user_api="openmp") if rows < PARALLEL_MIN_ROWS else nullcontext()


class Model(Protocol):
    """Any scikit-learn style estimator that can be fitted."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Any:
        """Fit the model to features `x` and target `y`."""


@dataclass(frozen=True)
class Constant:
    """What an outcome model becomes when its arm saw a single outcome (e.g. nobody returned)."""

    value: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The single outcome, for every row."""
        return np.full(len(x), self.value)


@dataclass(frozen=True)
class Linear:
    """Penalised linear base learner; ``penalty`` is the L2 weight per customer (C = 1 / (penalty · n))."""

    penalty: float
    layout: Literal["linear"] = "linear"

    def label(self) -> str:
        """The base learner as shown in the selection table."""
        return f"linear (penalty {self.penalty:g})"

    def outcome_model(self, binary: bool, n: int, categorical: np.ndarray, seed: int) -> Model:
        """An unfitted outcome model: logistic regression for a 0/1 outcome, ridge otherwise."""
        if binary:
            return LogisticRegression(C=1.0 / (self.penalty * max(n, 1)), max_iter=500)
        return Ridge(alpha=self.penalty * max(n, 1))

    def effect_model(self, n: int, categorical: np.ndarray, seed: int) -> Model:
        """An unfitted ridge regression for the effect (or pseudo-outcome)."""
        return Ridge(alpha=self.penalty * max(n, 1))


@dataclass(frozen=True)
class Trees:
    """Shallow histogram gradient boosting; leaves hold at least ``leaf_share`` of the rows (and 20)."""

    max_depth: int = 3
    leaf_share: float = 0.002
    max_iter: int = 60
    learning_rate: float = 0.1
    l2: float = 1.0
    layout: Literal["trees"] = "trees"

    def label(self) -> str:
        """The base learner as shown in the selection table."""
        return f"trees (depth {self.max_depth}, leaf {self.leaf_share:g}, {self.max_iter} rounds)"

    def _params(self, n: int, categorical: np.ndarray, seed: int) -> dict[str, Any]:
        return {
            "max_depth": self.max_depth,
            "min_samples_leaf": max(20, int(self.leaf_share * n)),
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "l2_regularization": self.l2,
            "categorical_features": categorical if categorical.any() else None,
            "early_stopping": n >= EARLY_STOPPING_MIN_ROWS,
            "n_iter_no_change": 5,
            "random_state": seed,
        }

    def outcome_model(self, binary: bool, n: int, categorical: np.ndarray, seed: int) -> Model:
        """An unfitted boosted classifier (0/1 outcome) or regressor."""
        params = self._params(n, categorical, seed)
        return HistGradientBoostingClassifier(**params) if binary else HistGradientBoostingRegressor(**params)

    def effect_model(self, n: int, categorical: np.ndarray, seed: int) -> Model:
        """An unfitted boosted regressor for the effect (or pseudo-outcome)."""
        return HistGradientBoostingRegressor(**self._params(n, categorical, seed))


Base = Linear | Trees

# A tree column with fewer values than this in the rows one model is fitted on (the treated arm of one fold,
# say) is set to a constant there and when predicting: no leaf could hold so few rows anyway, and histogram
# gradient boosting fails outright on a column with no value left after its early-stopping split.
MIN_COLUMN_VALUES = 20


@dataclass
class _Sparse:
    """A tree model fitted with its too-sparse columns made constant; those columns are ignored when predicting."""

    model: Any
    dead: np.ndarray

    @staticmethod
    def fill(x: np.ndarray, dead: np.ndarray) -> np.ndarray:
        if not dead.any():
            return x
        out = x.copy()
        out[:, dead] = 0.0
        return out


def _fit_trees(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    dead = (~np.isnan(x)).sum(axis=0) < MIN_COLUMN_VALUES
    if not dead.any():
        return model.fit(x, y)
    return _Sparse(model.fit(_Sparse.fill(x, dead), y), dead)


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(model, _Sparse):
        model, x = model.model, _Sparse.fill(x, model.dead)
    # only the boosted trees run OpenMP threads; setting their limit costs ~10 ms a call (it reads the
    # process's libraries), which a linear model scored by chunks would pay for nothing
    trees = isinstance(model, HistGradientBoostingClassifier | HistGradientBoostingRegressor)
    with threads_for(len(x)) if trees else nullcontext():
        if hasattr(model, "predict_proba"):
            return model.predict_proba(x)[:, 1]
        return np.asarray(model.predict(x), dtype=float)


@dataclass
class _Fitter:
    """Fits the base learner's models for one meta-learner (its layout, outcome kind and seed)."""

    base: Base
    binary: bool
    categorical: np.ndarray
    seed: int

    def outcome(self, x: np.ndarray, y: np.ndarray) -> Any:
        if self.binary and np.unique(y).size < 2:
            return Constant(float(y.mean()) if y.size else 0.0)
        with threads_for(len(y)):
            return self._fit(self.base.outcome_model(self.binary, len(y), self.categorical, self.seed), x, y)

    def effect(self, x: np.ndarray, target: np.ndarray) -> Any:
        with threads_for(len(target)):
            return self._fit(self.base.effect_model(len(target), self.categorical, self.seed), x, target)

    def _fit(self, model: Any, x: np.ndarray, y: np.ndarray) -> Any:
        return _fit_trees(model, x, y) if self.base.layout == "trees" else model.fit(x, y)


class MetaLearner:
    """Common shape: ``fit(x, treatment, outcome, propensity)`` then ``predict(x)`` gives uplift per row."""

    name = ""

    def __init__(self, base: Base, binary: bool, categorical: np.ndarray, seed: int = 0) -> None:
        self.base = base
        self.fitter = _Fitter(base, binary, categorical, seed)
        self.seed = seed

    def fit(self, x: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, propensity: np.ndarray) -> MetaLearner:
        """Learn uplift from randomized rows: features, 0/1 treatment, outcome and treated probability."""
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Estimated uplift per row of `x`."""
        raise NotImplementedError


class TLearner(MetaLearner):
    """One outcome model per arm; uplift is their difference."""

    name = "t-learner"

    def fit(self, x: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, propensity: np.ndarray) -> TLearner:
        """Fit the treated and the control outcome models."""
        t = treatment.astype(bool)
        self.mu1 = self.fitter.outcome(x[t], outcome[t])
        self.mu0 = self.fitter.outcome(x[~t], outcome[~t])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Treated minus control prediction."""
        return _predict(self.mu1, x) - _predict(self.mu0, x)


class XLearner(MetaLearner):
    """Imputed effects per arm, each modelled, then averaged by the treated share."""

    name = "x-learner"

    def fit(self, x: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, propensity: np.ndarray) -> XLearner:
        """Fit both arms' outcome models, then an effect model per arm on the imputed effects."""
        t = treatment.astype(bool)
        mu1 = self.fitter.outcome(x[t], outcome[t])
        mu0 = self.fitter.outcome(x[~t], outcome[~t])
        self.tau1 = self.fitter.effect(x[t], outcome[t] - _predict(mu0, x[t]))
        self.tau0 = self.fitter.effect(x[~t], _predict(mu1, x[~t]) - outcome[~t])
        self.weight = float(np.mean(propensity))  # g(x) = e: the arm with more data weighs its own imputation
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The two effect models, each weighted by the other arm's share."""
        return self.weight * _predict(self.tau0, x) + (1.0 - self.weight) * _predict(self.tau1, x)


class DRLearner(MetaLearner):
    """A doubly robust pseudo-outcome from cross-fitted outcome models, with one effect model fitted to it."""

    name = "dr-learner"
    folds = 2

    def fit(self, x: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, propensity: np.ndarray) -> DRLearner:
        """Cross-fit the outcome models, then fit the effect model to the pseudo-outcome."""
        t = treatment.astype(bool)
        e = np.clip(propensity, 0.01, 0.99)
        mu0, mu1 = np.zeros(len(t)), np.zeros(len(t))
        fold = np.random.default_rng(self.seed).integers(0, self.folds, size=len(t))
        for k in range(self.folds):
            here, rest = fold == k, fold != k
            mu1[here] = _predict(self.fitter.outcome(x[rest & t], outcome[rest & t]), x[here])
            mu0[here] = _predict(self.fitter.outcome(x[rest & ~t], outcome[rest & ~t]), x[here])
        pseudo = mu1 - mu0 + np.where(t, (outcome - mu1) / e, -(outcome - mu0) / (1.0 - e))
        self.tau = self.fitter.effect(x, pseudo)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The effect model's prediction."""
        return _predict(self.tau, x)


LEARNERS: dict[str, type[MetaLearner]] = {"t": TLearner, "x": XLearner, "dr": DRLearner}


@dataclass(frozen=True)
class Candidate:
    """One meta-learner over one base learner: a point in the grid the selection searches."""

    learner: Literal["t", "x", "dr"]
    base: Base

    @property
    def name(self) -> str:
        """The candidate as shown in the selection table: meta-learner and base learner."""
        return f"{LEARNERS[self.learner].name}, {self.base.label()}"

    def build(self, binary: bool, categorical: np.ndarray, seed: int = 0) -> MetaLearner:
        """An unfitted meta-learner of this kind over this base learner."""
        return LEARNERS[self.learner](self.base, binary, categorical, seed)
