"""A randomized win-back experiment with known, heterogeneous effects, for tests, benchmarks and the demo.

Every customer is one of four kinds, drawn with probabilities that depend on what winback can see:

* persuadables return far more often when contacted (recently lapsed, or hurt by a severe failure);
* sure things return anyway (recent, frequent buyers);
* lost causes do not return either way (long gone);
* sleeping dogs return *less* when contacted (customers already contacted often).

The true uplift of each customer given their features (``true_uplift``) is the probability-weighted effect
of the four kinds, so a learner can be judged against the truth as well as by the Qini on the arms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
RETURN_UNTREATED = np.array([0.04, 0.45, 0.01, 0.25])
RETURN_TREATED = np.array([0.20, 0.45, 0.01, 0.10])
COUNTRIES = np.array(["DE", "FR", "GB", "US", "NL"], dtype=object)


def kind_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """P(kind | features), one row per customer, columns in :data:`KINDS` order."""
    recency = frame["recency_days"].to_numpy(dtype=float)
    severity = frame["severity"].fillna(0).to_numpy(dtype=float)
    contacts = frame["past_contacts"].to_numpy(dtype=float)
    frequency = frame["frequency"].to_numpy(dtype=float)
    logits = np.column_stack(
        [
            -0.5 + 2.0 * (severity >= 2) + 2.0 * ((recency > 60) & (recency < 300)),
            0.0 + 3.0 * (recency < 90) + 0.4 * (frequency - 4),
            -1.0 + 4.0 * (recency > 450),
            -2.5 + 1.5 * np.clip(contacts - 2, 0, None),
        ]
    )
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def simulate_experiment(n: int, *, seed: int = 0, treated_share: float = 0.5) -> pd.DataFrame:
    """``n`` customers of a randomized campaign with known effects.

    Returns
    -------
    DataFrame
        ``customer_id``, features (``recency_days``, ``frequency``, ``monetary`` with some missing,
        ``tenure_days``, ``severity`` (missing when no failure), ``channel``, ``country`` with some missing,
        ``past_contacts``), ``treatment`` (0/1), ``returned`` (0/1), ``spend``, and the truth: ``kind`` and
        ``true_uplift`` (the expected effect on the return probability given the features).
    """
    rng = np.random.default_rng(seed)
    recency = rng.gamma(2.0, 110.0, n).round() + 30
    frequency = 1 + rng.poisson(3.0, n)
    monetary = np.exp(rng.normal(4.0, 0.6, n)).round(2)
    monetary[rng.random(n) < 0.05] = np.nan
    severity = np.where(rng.random(n) < 0.3, rng.integers(1, 4, n), np.nan)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "tenure_days": recency + rng.gamma(2.0, 200.0, n).round(),
            "severity": severity,
            "channel": np.where(rng.random(n) < 0.7, "email", "sms").astype(object),
            "country": np.where(rng.random(n) < 0.03, None, COUNTRIES[rng.integers(0, len(COUNTRIES), n)]),
            "past_contacts": rng.poisson(2.0, n),
        }
    )
    probs = kind_probabilities(frame)
    kind = (probs.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1).clip(max=len(KINDS) - 1)
    treated = rng.random(n) < treated_share
    p_return = np.where(treated, RETURN_TREATED[kind], RETURN_UNTREATED[kind])
    returned = rng.random(n) < p_return
    spend = np.where(returned, np.nan_to_num(monetary, nan=55.0) * rng.gamma(4.0, 0.25, n), 0.0).round(2)
    return frame.assign(
        treatment=treated.astype(int),
        returned=returned.astype(int),
        spend=spend,
        kind=np.asarray(KINDS, dtype=object)[kind],
        true_uplift=probs @ (RETURN_TREATED - RETURN_UNTREATED),
    )
