"""Gamma-Gamma spend model and margin CLV: published CDNOW fit, recovery, shrinkage, CLV algebra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_gradient_matches
from scipy.special import gamma as gamma_fn

from winback.segments.bgnbd import BgNbdFit, discounted_expected_purchases, expected_purchases, simulate_bgnbd
from winback.segments.gamma_gamma import (
    GammaGammaFit,
    expected_spend,
    fit_gamma_gamma,
    log_likelihood,
    log_likelihood_gradient,
    margin_clv,
    simulate_gamma_gamma,
)

# Fader, Hardie & Lee (2005), "RFM and CLV", and Fader & Hardie's Gamma-Gamma note: the 946
# CDNOW-sample customers with repeat purchases in the 39-week calibration period.
PUBLISHED = {"p": 6.25, "q": 3.74, "v": 15.44}
BGNBD = BgNbdFit(0.243, 4.414, 0.793, 2.426, log_likelihood=0.0, n_customers=0, converged=True, iterations=0)


def _gg(p: float, q: float, v: float) -> GammaGammaFit:
    return GammaGammaFit(p, q, v, log_likelihood=0.0, n_customers=0, converged=True)


@pytest.fixture(scope="module")
def cdnow_fit(cdnow: pd.DataFrame) -> GammaGammaFit:
    return fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"])


@pytest.mark.parametrize("name", list(PUBLISHED), ids=list(PUBLISHED))
def test_cdnow_parameters_match_published(cdnow_fit: GammaGammaFit, name: str) -> None:
    assert getattr(cdnow_fit, name) == pytest.approx(PUBLISHED[name], rel=0.02)


def test_cdnow_fit_uses_the_946_repeat_buyers(cdnow_fit: GammaGammaFit) -> None:
    assert cdnow_fit.converged
    assert cdnow_fit.n_customers == 946


def test_log_likelihood_equals_the_density_written_out() -> None:
    p, q, v = 4.0, 3.0, 20.0
    x = np.array([1, 2, 5, 3, 0], dtype=float)
    m = np.array([30.0, 12.5, 44.0, 8.0, 0.0])
    r = x > 0
    dens = (
        gamma_fn(p * x[r] + q)
        / (gamma_fn(p * x[r]) * gamma_fn(q))
        * v**q
        * m[r] ** (p * x[r] - 1)
        * x[r] ** (p * x[r])
        / (v + x[r] * m[r]) ** (p * x[r] + q)
    )
    assert log_likelihood([p, q, v], x, m) == pytest.approx(np.log(dens).sum(), rel=1e-12)


@pytest.mark.parametrize(
    "params", [(6.25, 3.74, 15.44), (1.0, 2.0, 3.0), (20.0, 1.5, 100.0)], ids=["published", "flat", "skewed"]
)
def test_gradient_matches_finite_differences(cdnow: pd.DataFrame, params: tuple[float, ...]) -> None:
    args = (cdnow["frequency"].to_numpy(), cdnow["monetary_value"].to_numpy())
    assert_gradient_matches(log_likelihood, log_likelihood_gradient, params, *args)


@pytest.mark.parametrize(
    ("true", "rtol"),
    [((6.0, 3.8, 15.0), (0.2, 0.06, 0.25)), ((2.0, 10.0, 50.0), (0.05, 0.06, 0.1))],
    ids=["cdnow-like", "tight-spend"],
)
def test_fit_recovers_simulated_parameters(true: tuple[float, ...], rtol: tuple[float, ...]) -> None:
    # ~3-4 standard deviations at 30k repeat buyers; p and v trade off, their ratio is sharper.
    rng = np.random.default_rng(99)
    x = rng.integers(1, 10, 30_000).astype(float)
    fit = fit_gamma_gamma(x, simulate_gamma_gamma(*true, x, rng=rng))
    assert fit.converged
    for got, want, tol in zip(fit.params, true, rtol, strict=True):
        assert got == pytest.approx(want, rel=tol)
    assert fit.population_mean_spend == pytest.approx(true[0] * true[2] / (true[1] - 1), rel=0.03)


def test_expected_spend_shrinks_towards_the_population_mean() -> None:
    fit = _gg(6.25, 3.74, 15.44)
    population = 6.25 * 15.44 / (3.74 - 1)
    x = np.array([0, 0, 1, 3, 30, 3000], dtype=float)
    m = np.array([0.0, 99.0, 100.0, 100.0, 100.0, 100.0])
    spend = expected_spend(fit, x, m)
    assert spend[0] == pytest.approx(population) and spend[1] == pytest.approx(population)
    # Weighted average of prior mean and own mean, weight on own mean growing with x.
    weight = 6.25 * x / (6.25 * x + 3.74 - 1)
    np.testing.assert_allclose(spend, (1 - weight) * population + weight * np.where(x > 0, m, 0), rtol=1e-12)
    assert np.all(np.diff(spend[2:]) > 0) and spend[-1] == pytest.approx(100.0, rel=1e-3)


def test_expected_spend_is_the_posterior_mean_on_simulated_customers() -> None:
    rng = np.random.default_rng(4)
    p, q, v = 6.0, 3.8, 15.0
    x = rng.integers(1, 6, 100_000).astype(float)
    nu = rng.gamma(q, 1 / v, x.size)
    m = rng.gamma(p * x, 1 / (x * nu))
    true_mean = p / nu
    predicted = expected_spend(_gg(p, q, v), x, m)
    for k in range(1, 6):
        sel = x == k
        diff = true_mean[sel] - predicted[sel]
        assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(sel.sum()), k


def test_margin_clv_is_margin_times_spend_times_discounted_purchases() -> None:
    rng = np.random.default_rng(8)
    T = rng.integers(1, 80, 2000).astype(float)
    s = simulate_bgnbd(0.243, 4.414, 0.793, 2.426, T=T, rng=rng)
    gg = _gg(6.25, 3.74, 15.44)
    spend = simulate_gamma_gamma(6.25, 3.74, 15.44, s.frequency, rng=rng)
    common = {"frequency": s.frequency, "recency": s.recency, "T": T}
    clv = margin_clv(
        BGNBD, gg, **common, mean_spend=spend, horizon_periods=26, margin=0.3, discount_rate_per_period=0.002
    )
    purchases = discounted_expected_purchases(BGNBD, **common, horizon_periods=26, discount_rate_per_period=0.002)
    np.testing.assert_allclose(clv, 0.3 * expected_spend(gg, s.frequency, spend) * purchases)
    undiscounted = margin_clv(
        BGNBD, gg, **common, mean_spend=spend, horizon_periods=26, margin=0.3, discount_rate_per_period=0.0
    )
    np.testing.assert_allclose(
        undiscounted, 0.3 * expected_spend(gg, s.frequency, spend) * expected_purchases(BGNBD, 26, **common)
    )
    assert np.all(clv <= undiscounted) and np.all(clv >= 0)
    longer = margin_clv(
        BGNBD, gg, **common, mean_spend=spend, horizon_periods=52, margin=0.3, discount_rate_per_period=0.002
    )
    assert np.all(longer >= clv)


def _repeat_data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(1, n + 1, dtype=float), np.linspace(10.0, 50.0, n)


@pytest.mark.parametrize(
    ("frequency", "spend", "message"),
    [
        ([0, 1, 2] * 5, [0, 10, 0.0] * 5, r"mean_spend must be positive for repeat buyers; 5 customers"),
        (
            [0, 1, 2] * 5,
            [5, 10, -3] * 5,
            r"frequency > 0 have zero, negative or missing spend, first index 2",
        ),
        ([1, 2] * 6, [np.nan, 3.0] * 6, r"mean_spend must be positive for repeat buyers; 6 customers"),
        ([1, -1] * 6, [3.0, 3.0] * 6, r"frequency must be finite and >= 0; 6 bad values, first index 1"),
        ([1, 2, 3], [3.0, 3.0], r"same length \(got 3, 2\)"),
        ([0] * 20 + [1] * 5, [0.0] * 20 + [9.0] * 5, r"at least 10 repeat buyers \(frequency > 0\), got 5"),
    ],
    ids=["zero-spend", "negative-spend", "nan-spend", "negative-frequency", "length-mismatch", "too-few"],
)
def test_fit_rejects_bad_input(frequency: list[float], spend: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_gamma_gamma(frequency, spend)


def test_fit_rejects_infinite_mean_spend() -> None:
    # q < 1 in the population: the spend distribution has no mean and the fit must say so.
    rng = np.random.default_rng(1)
    x = rng.integers(1, 10, 5000).astype(float)
    with pytest.raises(ValueError, match=r"fitted q = .* <= 1"):
        fit_gamma_gamma(x, simulate_gamma_gamma(6.0, 0.6, 15.0, x, rng=rng))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margin": 30.0}, r"margin must be a fraction in \[0, 1\] \(got 30.0\)"),
        ({"horizon_periods": 0}, r"horizon_periods must be a positive whole number"),
        ({"discount_rate_per_period": -0.01}, r"discount_rate_per_period must be >= 0"),
    ],
    ids=["margin-percent", "no-horizon", "negative-discount"],
)
def test_margin_clv_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    x, m = _repeat_data()
    settings = {"horizon_periods": 12, "margin": 0.3, "discount_rate_per_period": 0.01, **kwargs}
    with pytest.raises(ValueError, match=message):
        margin_clv(BGNBD, _gg(6.25, 3.74, 15.44), x, x * 2.0, x * 3.0, m, **settings)
