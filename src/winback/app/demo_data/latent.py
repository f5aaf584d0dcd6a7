"""Each customer's hidden state: where they live, when they joined, how often they buy, and how much."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winback.app.demo_data.clock import Clock
from winback.app.demo_data.parameters import (
    DROPOUT_A,
    DROPOUT_B,
    LAMBDA_CAP,
    LAMBDA_RATE,
    LAMBDA_SHAPE,
    ORDER_SHAPE,
    SPEND_RATE,
    SPEND_SHAPE,
    ZONES,
)


@dataclass(frozen=True)
class Latent:
    """Each customer's hidden state: where they live, when they joined, how they buy."""

    zone: np.ndarray
    signup: np.ndarray  # days since history start
    first: np.ndarray  # first order, minutes after sign-up
    rate: np.ndarray  # λ per day
    dropout: np.ndarray  # p per repeat order
    spend: np.ndarray  # expected order value


def _pick_zones(rng: np.random.Generator, n: int) -> np.ndarray:
    shares = np.array([z.share for z in ZONES])
    return rng.choice(len(ZONES), size=n, p=shares / shares.sum())


def _signups(rng: np.random.Generator, zone: np.ndarray, clock: Clock) -> np.ndarray:
    """Sign-up days drawn from each zone's growing, seasonal sign-up distribution."""
    u = rng.random(len(zone))
    out = np.empty(len(zone))
    for z in range(len(ZONES)):
        m = zone == z
        out[m] = np.interp(u[m], clock.signup_cdf[z], clock.grid[:-1])
    return out


def draw_latent(rng: np.random.Generator, n: int, clock: Clock) -> Latent:
    """The hidden state of `n` customers: zone, sign-up, purchase rate, dropout and spend scale."""
    zone = _pick_zones(rng, n)
    signup = _signups(rng, zone, clock)
    first = signup + rng.uniform(1, 30, n) / 1440.0
    rate = np.minimum(rng.gamma(LAMBDA_SHAPE, 1.0 / LAMBDA_RATE, n), LAMBDA_CAP)
    dropout = rng.beta(DROPOUT_A, DROPOUT_B, n)
    spend = ORDER_SHAPE / rng.gamma(SPEND_SHAPE, 1.0 / SPEND_RATE, n)  # Gamma-Gamma: E[value] = p / ν
    return Latent(zone, signup, first, rate, dropout, spend)
