"""Learning from past campaigns: each offer kind's lift prior, updated by what earlier runs measured.

A normal-normal update: the config's prior counts as `prior_weight` customers' worth of evidence, and
each kind's measured treated-minus-holdout return rate counts with the harmonic size of its arms (the
effective sample of a difference of two proportions). Few measured customers barely move the prior;
a large holdout comparison dominates it. Kinds never measured keep their prior.
"""

from __future__ import annotations

import pandas as pd

REQUIRED = ("offer_kind", "n_treated", "returned_treated", "n_holdout", "returned_holdout")


def updated_lifts(prior: dict[str, float], measured: pd.DataFrame, prior_weight: float = 2000.0) -> dict[str, float]:
    """The lift per offer kind to decide with, given the priors and past runs' results.

    Parameters
    ----------
    prior
        offer kind → expected absolute lift in return probability, from the campaign config.
    measured
        One row per offer kind (already summed over past runs): offer_kind, n_treated, returned_treated,
        n_holdout, returned_holdout.
    """
    missing = [c for c in REQUIRED if c not in measured.columns]
    if missing:
        raise ValueError(f"updated_lifts: required columns missing: {', '.join(missing)}")
    out = dict(prior)
    for row in measured.itertuples(index=False):
        if row.n_treated <= 0 or row.n_holdout <= 0 or row.offer_kind not in prior:
            continue
        observed = row.returned_treated / row.n_treated - row.returned_holdout / row.n_holdout
        n_eff = 2.0 / (1.0 / row.n_treated + 1.0 / row.n_holdout)
        out[row.offer_kind] = (prior[row.offer_kind] * prior_weight + observed * n_eff) / (prior_weight + n_eff)
    return out
