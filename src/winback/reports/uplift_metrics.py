"""How good is an uplift ranking? Judged only on randomized data, where treated and control are comparable.

An uplift model cannot be scored customer by customer: nobody is observed both contacted and not. What can
be observed is whether the customers it ranks first respond more to treatment than those it ranks last,
comparing the treated and control customers within each slice of the ranking. These functions do that:

* the Qini curve (Radcliffe 2007, "Using control groups to target on predicted lift"): for the top ``k``
  customers by score, the incremental outcome ``Y_t(k) − Y_c(k) · N_t(k) / N_c(k)``;
* the Qini coefficient: the area between that curve and the random-targeting diagonal, with the share of
  customers targeted on one axis and the incremental outcome divided by the number of treated customers on
  the other, so it reads as "extra effect per customer over random targeting, averaged over targeting
  depths" and is comparable between samples of different sizes and holdout shares (folds, runs);
* observed uplift by predicted-uplift decile, with intervals (Newcombe for a 0/1 outcome, Welch otherwise);
* the value of a targeting policy at a budget: incremental outcome of treating the top share by a score.

Ties in the score are kept together (a constant score is exactly random targeting: coefficient 0), and
every function takes plain arrays, so the report can use them on each closed run's holdout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winback.reports.stats import newcombe_interval, welch_interval

QINI_COLUMNS = ["share", "n", "n_treated", "n_control", "qini", "random"]
DECILE_COLUMNS = [
    "decile",
    "n_treated",
    "n_control",
    "predicted_uplift",
    "observed_uplift",
    "observed_uplift_low",
    "observed_uplift_high",
]


def _arrays(score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, ...]:
    s = np.asarray(score, dtype=float).ravel()
    t = np.asarray(treatment).ravel().astype(bool)
    y = np.asarray(outcome, dtype=float).ravel()
    if not s.size == t.size == y.size:
        raise ValueError(f"score, treatment and outcome differ in length ({s.size}, {t.size}, {y.size})")
    if not (np.isfinite(s).all() and np.isfinite(y).all()):
        raise ValueError("score and outcome must be finite")
    return s, t, y


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


def _ranked(score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, ...]:
    """Treatment and outcome in score order (highest first), and where each run of tied scores ends."""
    s, t, y = _arrays(score, treatment, outcome)
    order = np.argsort(-s, kind="stable")
    s, t, y = s[order], t[order], y[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True] if s.size else np.zeros(0, dtype=bool)
    return t, y, last_of_tie


def _qini_points(
    t: np.ndarray, y: np.ndarray, last_of_tie: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Cumulative counts and the Qini value at the end of each tie run (rows weighted for the bootstrap)."""
    w = np.ones(t.size) if weight is None else weight
    n = np.cumsum(w)[last_of_tie]
    n_t = np.cumsum(np.where(t, w, 0.0))[last_of_tie]
    n_c = n - n_t
    y_t = np.cumsum(np.where(t, w * y, 0.0))[last_of_tie]
    y_c = np.cumsum(np.where(t, 0.0, w * y))[last_of_tie]
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = y_t - np.where(n_c > 0, y_c * n_t / n_c, 0.0)
    return n, n_t, n_c, qini


def _area(n: np.ndarray, n_t: np.ndarray, qini: np.ndarray) -> float:
    """Area between the curve and the diagonal: share targeted against incremental outcome per treated customer.

    Radcliffe's curve counts increments among the treated only, so it grows with the treated share; divided by
    the number treated, its end point is the average effect and the area no longer depends on the holdout share.
    """
    if n.size == 0 or n[-1] <= 0 or n_t[-1] <= 0:
        return float("nan")
    share = np.r_[0.0, n / n[-1]]
    gap = np.r_[0.0, (qini - share[1:] * qini[-1]) / n_t[-1]]
    return float(np.trapezoid(gap, share))


def qini_curve(score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> pd.DataFrame:
    """The Qini curve of a ranking: incremental outcome among the top customers by ``score``.

    Parameters
    ----------
    score
        Predicted uplift (higher = target first).
    treatment
        1/True for treated, 0/False for control (randomized).
    outcome
        The observed outcome (0/1 return, or spend).

    Returns
    -------
    DataFrame
        :data:`QINI_COLUMNS`, one row per distinct score (ties kept together) plus the origin: ``share`` of
        customers targeted, counts, ``qini`` (incremental outcome, in outcome units) and ``random`` (the
        diagonal: what targeting the same share at random would get on average).
    """
    t, y, last_of_tie = _ranked(score, treatment, outcome)
    n, n_t, n_c, qini = _qini_points(t, y, last_of_tie)
    total = qini[-1] if qini.size else 0.0
    size = max(t.size, 1)
    return pd.DataFrame(
        {
            "share": np.r_[0.0, n / size],
            "n": np.r_[0, n].astype(int),
            "n_treated": np.r_[0, n_t].astype(int),
            "n_control": np.r_[0, n_c].astype(int),
            "qini": np.r_[0.0, qini],
            "random": np.r_[0.0, n / size * total],
        },
        columns=QINI_COLUMNS,
    )


def qini_coefficient(score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> float:
    """Area between the Qini curve and the random diagonal (0 = no better than random; negative = worse).

    The x axis is the share of customers targeted, the y axis the incremental outcome divided by the number of
    treated customers, so the value reads "extra effect per customer over random targeting, averaged over every
    targeting depth", whatever the sample size or holdout share: for a 0/1 outcome, 0.01 means targeting by this
    score gains one point of return rate on average over random targeting of the same number of customers.
    """
    t, y, last_of_tie = _ranked(score, treatment, outcome)
    n, n_t, _, qini = _qini_points(t, y, last_of_tie)
    return _area(n, n_t, qini)


def qini_interval(
    score: np.ndarray,
    treatment: np.ndarray,
    outcome: np.ndarray,
    *,
    confidence: float = 0.95,
    replicates: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`qini_coefficient`, the ranking held fixed.

    Resamples customers (Poisson weights, so the one sort serves every replicate): the interval says how
    much the coefficient owes to which customers happened to be in the sample, not to refitting the model.
    """
    t, y, last_of_tie = _ranked(score, treatment, outcome)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        n, n_t, _, qini = _qini_points(t, y, last_of_tie, rng.poisson(1.0, t.size).astype(float))
        values.append(_area(n, n_t, qini))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _arm_difference(t: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, confidence: float) -> pd.DataFrame:
    """Treated-minus-control mean outcome per group 0..k-1, with an interval suited to the outcome."""
    n_t = np.bincount(groups, weights=t, minlength=k)
    n_all = np.bincount(groups, minlength=k).astype(float)
    n_c = n_all - n_t
    s_t = np.bincount(groups, weights=np.where(t, y, 0.0), minlength=k)
    s_c = np.bincount(groups, weights=np.where(t, 0.0, y), minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_t, m_c = s_t / n_t, s_c / n_c
        if _is_binary(y):
            low, high = newcombe_interval(s_t, n_t, s_c, n_c, confidence=confidence)
        else:
            q_t = np.bincount(groups, weights=np.where(t, y * y, 0.0), minlength=k)
            q_c = np.bincount(groups, weights=np.where(t, 0.0, y * y), minlength=k)
            v_t = (q_t - n_t * m_t**2) / (n_t - 1.0)
            v_c = (q_c - n_c * m_c**2) / (n_c - 1.0)
            low, high, _, _ = welch_interval(m_t, v_t, n_t, m_c, v_c, n_c, confidence=confidence)
    return pd.DataFrame({"n_treated": n_t.astype(int), "n_control": n_c.astype(int), "diff": m_t - m_c,
                         "low": low, "high": high})  # fmt: skip


def uplift_by_decile(
    score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, *, bins: int = 10, confidence: float = 0.95
) -> pd.DataFrame:
    """Observed uplift in each slice of the ranking, decile 1 holding the highest predicted uplift.

    A model worth using shows observed uplift falling from the first decile to the last, and its predicted
    uplift close to the observed one. Ties are broken by position, so every slice has the same size
    (within one customer).

    Returns
    -------
    DataFrame
        :data:`DECILE_COLUMNS`: counts per arm, mean predicted uplift, observed treated-minus-control mean
        outcome and its interval (Newcombe's for a 0/1 outcome, Welch's otherwise; NaN where an arm is
        empty or too small).
    """
    s, t, y = _arrays(score, treatment, outcome)
    order = np.argsort(-s, kind="stable")
    groups = np.empty(s.size, dtype=np.int64)
    groups[order] = np.arange(s.size) * bins // max(s.size, 1)
    diff = _arm_difference(t, y, groups, bins, confidence)
    predicted = np.bincount(groups, weights=s, minlength=bins) / np.maximum(np.bincount(groups, minlength=bins), 1)
    return pd.DataFrame(
        {
            "decile": np.arange(1, bins + 1),
            "n_treated": diff["n_treated"],
            "n_control": diff["n_control"],
            "predicted_uplift": predicted,
            "observed_uplift": diff["diff"],
            "observed_uplift_low": diff["low"],
            "observed_uplift_high": diff["high"],
        },
        columns=DECILE_COLUMNS,
    )


def policy_value(
    score: np.ndarray | None,
    treatment: np.ndarray,
    outcome: np.ndarray,
    *,
    share: float,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Incremental outcome of treating the top ``share`` of customers by ``score``, estimated from the arms.

    ``score=None`` is random targeting: the same number of customers, at the whole sample's average effect.
    Comparing policies at the same ``share`` compares them at the same budget of contacts.

    Returns
    -------
    dict
        ``n_targeted``, ``uplift`` (treated-minus-control mean outcome among the targeted) with ``low`` and
        ``high``, and ``incremental`` (= uplift × n_targeted) with ``incremental_low``/``_high``.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    t = np.asarray(treatment).ravel().astype(bool)
    y = np.asarray(outcome, dtype=float).ravel()
    n_targeted = round(share * t.size)
    picked = np.ones(t.size, dtype=bool)
    if score is not None:
        s, t, y = _arrays(score, t, y)
        picked[:] = False
        picked[np.argsort(-s, kind="stable")[:n_targeted]] = True
    diff = _arm_difference(t[picked], y[picked], np.zeros(int(picked.sum()), dtype=np.int64), 1, confidence)
    row = diff.iloc[0]
    return {
        "n_targeted": float(n_targeted),
        "uplift": float(row["diff"]),
        "low": float(row["low"]),
        "high": float(row["high"]),
        "incremental": float(row["diff"]) * n_targeted,
        "incremental_low": float(row["low"]) * n_targeted,
        "incremental_high": float(row["high"]) * n_targeted,
    }
