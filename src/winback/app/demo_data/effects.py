"""The demo's true effect of a message, different for every customer: who is moved, who is not, who is pushed away.

Each decided customer is, for one run, one of four kinds, drawn with probabilities that depend on what
winback saw when it decided (the decision's own columns and stored features):

* persuadables come back when contacted and would not have otherwise: recently lapsed (45-240 days since
  their last order), valuable, or hurt by a severe failure still unresolved or slowly resolved;
* sure things come back anyway (recent buyers): a message changes nothing, and an offer is given away;
* lost causes do not come back either way (a year or more since their last order, or never really active);
* sleeping dogs come back unless contacted: frequent buyers only just overdue, customers messaged twice or
  more before, and customers whose minor failure was resolved quickly (the message reopens it).

Contact moves a persuadable who would not have returned with probability :data:`PERSUADED` with an offer, a
share :data:`PLAIN_SHARE` of that with the message alone, and stops a sleeping dog who would have returned
with probability :data:`PUSHED`. Per customer, with ``p0`` the chance of returning uncontacted:

    true effect = P(persuadable) × persuaded × (1 − p0) − P(sleeping dog) × PUSHED × p0
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
PERSUADED = 0.30
PLAIN_SHARE = 0.6
PUSHED = 0.8


def _column(frame: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), default)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def kind_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """P(kind | what the decision saw), one row per customer, columns in :data:`KINDS` order.

    ``frame`` has the decision's columns (segment, severity, customer_value) and its features
    (days_since_last, frequency, unresolved, days_to_resolve, past_contacts); missing ones count as absent.
    """
    since = np.nan_to_num(_column(frame, "days_since_last", np.nan), nan=400.0)
    frequency = np.nan_to_num(_column(frame, "frequency", 0.0))
    value = np.nan_to_num(_column(frame, "customer_value", 0.0))
    severity = np.nan_to_num(_column(frame, "severity", 0.0))
    contacts = np.nan_to_num(_column(frame, "past_contacts", 0.0))
    to_resolve = _column(frame, "days_to_resolve", np.nan)
    unresolved = frame.get("unresolved", pd.Series(False, index=frame.index)).fillna(False).astype(bool).to_numpy()
    aggrieved = (frame.get("segment", pd.Series("", index=frame.index)) == "aggrieved").to_numpy()
    hurt = aggrieved & (severity >= 3) & (unresolved | (np.nan_to_num(to_resolve, nan=0.0) > 7))
    minor_quickly_fixed = aggrieved & (severity <= 2) & ~unresolved & (np.nan_to_num(to_resolve, nan=99.0) <= 3)
    just_overdue_regular = (frequency >= 6) & (since < 120)
    logits = np.column_stack(
        [
            -2.0 + 3.5 * ((since >= 45) & (since <= 240) & ~just_overdue_regular) + 1.0 * (value >= 20) + 3.0 * hurt,
            -1.0 + 2.5 * (since < 45),
            -1.0 + 3.5 * (since > 365) + 1.5 * ((frequency == 0) & (since > 240)),
            -3.0 + 4.5 * just_overdue_regular + 2.0 * (contacts >= 3) + 4.0 * minor_quickly_fixed,
        ]
    )
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def persuaded_share(frame: pd.DataFrame) -> np.ndarray:
    """The chance contact moves a persuadable non-returner: full with an offer, :data:`PLAIN_SHARE` without."""
    offered = frame.get("offer_kind", pd.Series("none", index=frame.index)).fillna("none") != "none"
    return np.where(offered.to_numpy(), PERSUADED, PERSUADED * PLAIN_SHARE)


def true_effect(frame: pd.DataFrame, p0: np.ndarray) -> np.ndarray:
    """Each customer's expected effect of contact on the chance of returning (see the module docstring)."""
    probs = kind_probabilities(frame)
    p0 = np.asarray(p0, dtype=float)
    return probs[:, 0] * persuaded_share(frame) * (1.0 - p0) - probs[:, 3] * PUSHED * p0


def draw_kinds(rng: np.random.Generator, frame: pd.DataFrame) -> np.ndarray:
    """One kind index per customer (into :data:`KINDS`), drawn from :func:`kind_probabilities`."""
    probs = kind_probabilities(frame)
    return (probs.cumsum(axis=1) < rng.random(len(frame))[:, None]).sum(axis=1).clip(max=len(KINDS) - 1)


def contacted_outcome(
    rng: np.random.Generator, frame: pd.DataFrame, kinds: np.ndarray, untreated: np.ndarray
) -> np.ndarray:
    """Whether each contacted customer returns, given whether they would have uncontacted (``untreated``)."""
    moved = (kinds == 0) & (rng.random(len(frame)) < persuaded_share(frame))
    pushed = (kinds == 3) & (rng.random(len(frame)) < PUSHED)
    return (untreated | moved) & ~(untreated & pushed)
