"""BG/NBD purchase model (Fader, Hardie & Lee 2005): fit, P(alive) and expected future purchases.

Why BG/NBD: it needs only (frequency, recency, T) per customer, fits a million customers in about
a second, and its P(alive) is what tells a lapsed-but-loyal customer (worth winning back) from one
who has quietly left. Everything here is plain numpy/scipy so it runs inside a flow, a CLI or a test.

Conventions (the paper's):

* ``frequency`` x: number of REPEAT purchases (purchase periods after the first) in (0, T].
* ``recency`` t_x: the customer's age at the last repeat purchase (0 when x = 0). This is *not*
  the RFM "time since last purchase"; passing that by mistake is caught where it can be.
* ``T``: the customer's age at the end of the observation window, in the same time unit.

The fit lives in `segments.bgnbd_fit`, the predictions in `segments.bgnbd_predict`; every public name is
importable from here. The simulation used by the tests and the benchmark is below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from winback.segments.bgnbd_fit import (
    MIN_CUSTOMERS,
    BgNbdFit,
    check_fit,
    fit_bgnbd,
    log_likelihood,
    log_likelihood_gradient,
    validate_frt,
)
from winback.segments.bgnbd_predict import (
    discounted_expected_purchases,
    expected_purchases,
    expected_purchases_new,
    p_alive,
)

__all__ = [
    "MIN_CUSTOMERS", "BgNbdFit", "BgNbdSample", "check_fit", "discounted_expected_purchases",
    "expected_purchases", "expected_purchases_new", "fit_bgnbd", "log_likelihood", "log_likelihood_gradient",
    "p_alive", "simulate_bgnbd", "validate_frt",
]  # fmt: skip


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class BgNbdSample:
    """Customers drawn from the model: the observed summary plus what the model hides."""

    frequency: np.ndarray
    recency: np.ndarray
    frequency_holdout: np.ndarray
    alive: np.ndarray  # still active at T (never observed in real data)


def simulate_bgnbd(
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: ArrayLike,
    *,
    rng: np.random.Generator,
    holdout: float = 0.0,
) -> BgNbdSample:
    """Draw customers of ages ``T`` from the model, exactly and vectorised.

    lambda ~ Gamma(r, 1/alpha), p ~ Beta(a, b); the customer dies right after repeat purchase
    J ~ Geometric(p); N ~ Poisson(lambda T) purchase opportunities in (0, T], x = min(N, J), and
    the x-th of N uniform arrival times is T * Beta(x, N - x + 1). Holdout purchases in
    (T, T + holdout] are min(Poisson(lambda holdout), J - x) if alive. Used by the tests
    (parameter recovery, checking predictions against outcomes) and the benchmark.
    """
    age = np.asarray(T, dtype=float)
    n = age.size
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    lifetime_purchases = rng.geometric(p)
    opportunities = rng.poisson(lam * age)
    x = np.minimum(opportunities, lifetime_purchases)
    t_x = np.zeros(n)
    rep = x > 0
    t_x[rep] = age[rep] * rng.beta(x[rep], opportunities[rep] - x[rep] + 1)
    alive = opportunities < lifetime_purchases
    future = rng.poisson(lam * holdout) if holdout > 0 else np.zeros(n, dtype=np.int64)
    holdout_x = np.where(alive, np.minimum(future, lifetime_purchases - x), 0)
    return BgNbdSample(frequency=x.astype(float), recency=t_x, frequency_holdout=holdout_x.astype(float), alive=alive)
