"""BG/NBD: the published CDNOW fit, recovery of simulated parameters, predictions vs outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_gradient_matches
from scipy.special import beta as beta_fn
from scipy.special import gamma as gamma_fn
from scipy.special import hyp2f1

from winback.segments.bgnbd import (
    BgNbdFit,
    discounted_expected_purchases,
    expected_purchases,
    expected_purchases_new,
    fit_bgnbd,
    log_likelihood,
    log_likelihood_gradient,
    p_alive,
    simulate_bgnbd,
)

# Fader, Hardie & Lee (2005), "Counting your customers the easy way", CDNOW sample, 39-week
# calibration: r, alpha, a, b and the maximised log-likelihood.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4
TRUE_CDNOW_LIKE = (0.25, 4.0, 0.8, 2.5)


def _fit(r: float, alpha: float, a: float, b: float) -> BgNbdFit:
    return BgNbdFit(r, alpha, a, b, log_likelihood=0.0, n_customers=0, converged=True, iterations=0)


# `cdnow` (conftest): repeat purchases counted on distinct days, recency and T in weeks: the paper's data.
@pytest.fixture(scope="module")
def cdnow_fit(cdnow: pd.DataFrame) -> BgNbdFit:
    return fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    T = rng.integers(1, 105, 200_000).astype(float)
    s = simulate_bgnbd(*TRUE_CDNOW_LIKE, T=T, rng=rng, holdout=39.0)
    return s.frequency, s.recency, T, s.frequency_holdout, s.alive


# --------------------------------------------------------------------------- literature


@pytest.mark.parametrize("name", list(PUBLISHED), ids=list(PUBLISHED))
def test_cdnow_parameters_match_published(cdnow_fit: BgNbdFit, name: str) -> None:
    assert getattr(cdnow_fit, name) == pytest.approx(PUBLISHED[name], rel=0.01)


def test_cdnow_log_likelihood_matches_published(cdnow_fit: BgNbdFit) -> None:
    assert cdnow_fit.converged
    assert cdnow_fit.n_customers == 2357
    assert abs(cdnow_fit.log_likelihood - PUBLISHED_LL) < 0.5


def test_cdnow_fit_does_not_depend_on_the_start(cdnow: pd.DataFrame, cdnow_fit: BgNbdFit) -> None:
    other = fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"], initial=(3.0, 0.5, 5.0, 0.2))
    np.testing.assert_allclose(other.params, cdnow_fit.params, rtol=1e-4)


def test_log_likelihood_at_published_parameters(cdnow: pd.DataFrame) -> None:
    params = [PUBLISHED[k] for k in ("r", "alpha", "a", "b")]
    assert log_likelihood(params, cdnow["frequency"], cdnow["recency"], cdnow["T"]) == pytest.approx(
        PUBLISHED_LL, abs=1.0
    )


# --------------------------------------------------------------------------- likelihood


def test_log_likelihood_equals_the_paper_formula_term_by_term() -> None:
    """FHL 2005 eq. 6 written naively (fine for small x) against the stable log form."""
    r, alpha, a, b = 0.7, 3.0, 1.3, 2.2
    x = np.array([0, 0, 1, 2, 5, 3, 1, 0, 4, 2], dtype=float)
    t_x = np.array([0, 0, 3.5, 10.0, 20.0, 4.0, 29.0, 0, 12.5, 30.0])
    T = np.array([5.0, 30, 20, 30, 25, 30, 30, 1, 14, 30])
    first = beta_fn(a, b + x) / beta_fn(a, b) * gamma_fn(r + x) * alpha**r / (gamma_fn(r) * (alpha + T) ** (r + x))
    second = np.where(
        x > 0,
        beta_fn(a + 1, np.maximum(b + x - 1, 1e-9))
        / beta_fn(a, b)
        * gamma_fn(r + x)
        * alpha**r
        / (gamma_fn(r) * (alpha + t_x) ** (r + x)),
        0.0,
    )
    expected = np.log(first + second).sum()
    assert log_likelihood([r, alpha, a, b], x, t_x, T) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "params",
    [(0.243, 4.414, 0.793, 2.426), (0.5, 2.0, 1.5, 0.7), (2.0, 10.0, 0.3, 5.0), (0.05, 0.5, 4.0, 40.0)],
    ids=["published", "a-above-1", "small-a", "extreme"],
)
def test_gradient_matches_finite_differences(cdnow: pd.DataFrame, params: tuple[float, ...]) -> None:
    args = (cdnow["frequency"].to_numpy(), cdnow["recency"].to_numpy(), cdnow["T"].to_numpy())
    assert_gradient_matches(log_likelihood, log_likelihood_gradient, params, *args)


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize(
    ("true", "rtol"),
    [((0.25, 4.0, 0.8, 2.5), (0.04, 0.05, 0.12, 0.18)), ((1.5, 10.0, 2.0, 6.0), (0.06, 0.07, 0.15, 0.2))],
    ids=["cdnow-like", "frequent-buyers"],
)
def test_fit_recovers_simulated_parameters(true: tuple[float, ...], rtol: tuple[float, ...]) -> None:
    # Tolerances are ~4 standard deviations of the estimator at this sample size (50k customers).
    rng = np.random.default_rng(2024)
    T = rng.integers(1, 105, 50_000).astype(float)
    s = simulate_bgnbd(*true, T=T, rng=rng)
    fit = fit_bgnbd(s.frequency, s.recency, T)
    assert fit.converged
    for got, want, tol in zip(fit.params, true, rtol, strict=True):
        assert got == pytest.approx(want, rel=tol)


# --------------------------------------------------------------------------- P(alive)


def test_p_alive_matches_closed_form() -> None:
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    fit = _fit(r, alpha, a, b)
    x = np.array([0, 0, 1, 2, 7, 3], dtype=float)
    t_x = np.array([0, 0, 1.0, 30.43, 38.0, 5.0])
    T = np.array([38.86, 0.0, 38.86, 38.86, 38.86, 60.0])
    closed = np.where(x > 0, 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)), 1.0)
    got = p_alive(fit, x, t_x, T)
    np.testing.assert_allclose(got, closed, rtol=1e-12)
    # BG/NBD: no repeat purchase means no chance yet to drop out, whatever T is.
    assert np.all(got[x == 0] == 1.0)
    assert np.all(got[x > 0] < 1.0)


def test_p_alive_decreases_with_age_for_fixed_recency() -> None:
    fit = _fit(0.243, 4.414, 0.793, 2.426)
    T = np.linspace(10.0, 200.0, 50)
    for x in (1.0, 3.0, 10.0):
        alive = p_alive(fit, np.full(T.size, x), np.full(T.size, 10.0), T)
        assert np.all(np.diff(alive) < 0)
        # ...and increases with recency for fixed age.
        rec = np.linspace(1.0, 60.0, 30)
        assert np.all(np.diff(p_alive(fit, np.full(30, x), rec, np.full(30, 60.0))) > 0)


def test_p_alive_is_stable_for_long_absences() -> None:
    fit = _fit(0.243, 4.414, 0.793, 2.426)
    alive = p_alive(fit, [500.0, 2000.0], [1.0, 1.0], [5000.0, 1e6])
    assert np.all(np.isfinite(alive))
    assert np.all(alive >= 0) and np.all(alive < 1e-12)


def test_p_alive_is_calibrated_on_simulated_customers(simulated: tuple[np.ndarray, ...]) -> None:
    x, t_x, T, _, alive = simulated
    predicted = p_alive(_fit(*TRUE_CDNOW_LIKE), x, t_x, T)
    repeat = x > 0
    edges = np.quantile(predicted[repeat], np.linspace(0, 1, 6))
    bins = np.clip(np.searchsorted(edges, predicted[repeat], side="right") - 1, 0, 4)
    for k in range(5):
        members = bins == k
        obs = alive[repeat][members].mean()
        se = np.sqrt(obs * (1 - obs) / members.sum())
        assert abs(predicted[repeat][members].mean() - obs) < 4 * se + 1e-3


# --------------------------------------------------------------------------- expectations


def test_expected_purchases_matches_paper_formula() -> None:
    """Eq. 10 written directly (fine for moderate x) against the Euler-transformed form."""
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    fit = _fit(r, alpha, a, b)
    x = np.array([0, 1, 2, 5, 10, 0], dtype=float)
    t_x = np.array([0, 5.0, 30.43, 20.0, 35.0, 0])
    T = np.array([38.86, 38.86, 38.86, 30.0, 38.0, 5.0])
    t = 39.0
    z = t / (alpha + T + t)
    direct = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
    )
    direct /= 1 + (x > 0) * a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    np.testing.assert_allclose(expected_purchases(fit, t, x, t_x, T), direct, rtol=1e-9)


def test_expected_purchases_new_is_the_fresh_customer_case() -> None:
    fit = _fit(0.243, 4.414, 0.793, 2.426)
    t = np.array([1.0, 13.0, 39.0, 78.0])
    zeros = np.zeros(t.size)
    np.testing.assert_allclose(expected_purchases(fit, t, zeros, zeros, zeros), expected_purchases_new(fit, t))
    assert expected_purchases_new(fit, 0.0) == 0.0
    assert np.all(np.diff(expected_purchases_new(fit, t)) > 0)


@pytest.mark.parametrize("a", [0.793, 1.0, 1.0 + 1e-9, 3.0], ids=["a<1", "a=1", "a~1", "a>1"])
def test_expected_purchases_is_continuous_in_a(a: float) -> None:
    t = np.array([5.0, 39.0])
    near = expected_purchases_new(_fit(0.243, 4.414, a + 1e-4, 2.426), t)
    np.testing.assert_allclose(expected_purchases_new(_fit(0.243, 4.414, a, 2.426), t), near, rtol=1e-3)


def test_expected_purchases_stable_for_heavy_buyers() -> None:
    """Where plain 2F1(r+x, b+x; ...) overflows, check eq. 10 by Monte Carlo over the posterior.

    Given alive: lambda ~ Gamma(r+x, alpha+T), p ~ Beta(a, b+x) and E[Y(t)] = (1 - e^(-lambda p t)) / p.
    """
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    fit = _fit(r, alpha, a, b)
    t, x, t_x, T = 52.0, np.array([300.0, 1000.0]), np.array([99.0, 99.9]), np.array([100.0, 100.0])
    got = expected_purchases(fit, t, x, t_x, T)
    assert np.all(np.isfinite(got))
    rng = np.random.default_rng(5)
    for i in range(2):
        lam = rng.gamma(r + x[i], 1 / (alpha + T[i]), 400_000)
        p = rng.beta(a, b + x[i], 400_000)
        draws = -np.expm1(-lam * p * t) / p
        se = draws.std() / np.sqrt(draws.size)
        alive = p_alive(fit, x[i : i + 1], t_x[i : i + 1], T[i : i + 1])[0]
        assert abs(got[i] - alive * draws.mean()) < 4 * se * alive


@pytest.mark.parametrize(
    "params",
    [TRUE_CDNOW_LIKE, (0.3, 2.0, 0.3, 0.5), (5.0, 1.0, 0.1, 0.1), (0.5, 1.0, 3.0, 0.2)],
    ids=["cdnow-like", "a+b<1", "tiny-a-b", "a>1"],
)
@pytest.mark.parametrize("t", [1.0, 39.0, 1000.0], ids=["t=1", "t=39", "t=1000"])
def test_expected_purchases_new_matches_simulation(params: tuple[float, ...], t: float) -> None:
    rng = np.random.default_rng(11)
    s = simulate_bgnbd(*params, T=np.full(100_000, t), rng=rng)
    se = s.frequency.std() / np.sqrt(s.frequency.size)
    got = expected_purchases_new(_fit(*params), t)
    assert np.isfinite(got)
    assert abs(s.frequency.mean() - got) < 4 * se


def test_conditional_expectation_matches_simulated_holdout(simulated: tuple[np.ndarray, ...]) -> None:
    x, t_x, T, holdout, _ = simulated
    predicted = expected_purchases(_fit(*TRUE_CDNOW_LIKE), 39.0, x, t_x, T)
    for lo, hi in [(0, 0), (1, 1), (2, 2), (3, 5), (6, np.inf)]:
        members = (x >= lo) & (x <= hi)
        se = holdout[members].std() / np.sqrt(members.sum())
        assert abs(predicted[members].mean() - holdout[members].mean()) < 4 * se, (lo, hi)


def test_discounted_purchases_sum_discounted_increments() -> None:
    fit = _fit(0.243, 4.414, 0.793, 2.426)
    rng = np.random.default_rng(3)
    T = np.concatenate([rng.integers(1, 60, 300).astype(float), rng.uniform(1, 60, 300)])
    s = simulate_bgnbd(0.243, 4.414, 0.793, 2.426, T=T, rng=rng)
    d, horizon = 0.01, 12
    got = discounted_expected_purchases(
        fit, s.frequency, s.recency, T, horizon_periods=horizon, discount_rate_per_period=d
    )
    cumulative = np.array([expected_purchases(fit, k, s.frequency, s.recency, T) for k in range(horizon + 1)])
    want = (np.diff(cumulative, axis=0) / (1 + d) ** np.arange(1, horizon + 1)[:, None]).sum(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    undiscounted = discounted_expected_purchases(
        fit, s.frequency, s.recency, T, horizon_periods=horizon, discount_rate_per_period=0.0
    )
    np.testing.assert_allclose(undiscounted, cumulative[-1], rtol=1e-10)
    assert np.all(got <= undiscounted)


def test_discounted_purchases_by_parts_with_known_sums_equal_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts scored one after another, sharing the sums evaluated so far, give the whole's values exactly."""
    from winback.segments import bgnbd_predict

    fit = _fit(0.243, 4.414, 0.793, 2.426)
    rng = np.random.default_rng(5)
    T = rng.integers(1, 40, 2_000).astype(float)
    s = simulate_bgnbd(0.243, 4.414, 0.793, 2.426, T=T, rng=rng)
    options = {"horizon_periods": 12, "discount_rate_per_period": 0.01}
    whole = discounted_expected_purchases(fit, s.frequency, s.recency, T, **options)
    evaluated: list[int] = []
    real = bgnbd_predict._discounted_sums
    monkeypatch.setattr(
        bgnbd_predict, "_discounted_sums", lambda fit, x, *rest: evaluated.append(x.size) or real(fit, x, *rest)
    )
    known: dict[tuple[float, float], float] = {}
    parts = [
        discounted_expected_purchases(fit, s.frequency[i], s.recency[i], T[i], **options, known=known)
        for i in (slice(0, 1_000), slice(1_000, 2_000))
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    pairs = len(set(zip(s.frequency.tolist(), T.tolist(), strict=True)))
    assert sum(evaluated) == len(known) == pairs  # each (x, T) pair once over both parts
    assert evaluated[1] < evaluated[0]  # the second part met most of its pairs in the first


# --------------------------------------------------------------------------- bad input


def _valid(n: int = 12) -> dict[str, np.ndarray]:
    x = np.array([0, 1, 2, 0, 3, 1, 0, 2, 4, 0, 1, 0][:n], dtype=float)
    t_x = np.where(x > 0, 5.0, 0.0)
    return {"frequency": x, "recency": t_x, "T": np.full(n, 10.0)}


def _with(name: str, index: int | slice, value: float) -> dict[str, np.ndarray]:
    data = _valid()
    data[name] = data[name].copy()
    data[name][index] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with("frequency", 3, -1.0), r"frequency has 1 negative values, first index 3"),
        (_with("recency", 2, np.nan), r"recency has 1 NaN or infinite values, first index 2"),
        (_with("T", 5, np.inf), r"T has 1 NaN or infinite values, first index 5"),
        (_with("recency", slice(1, 3), 11.0), r"recency greater than T for 2 customers, first index 1"),
        (_with("recency", 4, 0.0), r"recency is 0 for 1 customers with frequency > 0.*first index 4"),
        (_with("recency", 6, 3.0), r"recency > 0 for 1 customers with frequency 0.*first index 6"),
        (_with("frequency", 7, 1.5), r"whole repeat purchases; 1 non-integer values, first index 7"),
        ({**_valid(), "T": np.full(11, 10.0)}, r"same length \(got 12, 12, 11\)"),
        ({k: v[:5] for k, v in _valid().items()}, r"at least 10 customers to fit, got 5"),
        ({k: v.reshape(3, 4) for k, v in _valid().items()}, r"frequency must be one-dimensional"),
    ],
    ids=[
        "negative",
        "nan",
        "inf",
        "recency-after-T",
        "repeat-with-zero-recency",
        "recency-without-repeat",
        "fractional-frequency",
        "length-mismatch",
        "too-few",
        "two-dimensional",
    ],
)
def test_fit_rejects_bad_input(data: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_bgnbd(data["frequency"], data["recency"], data["T"])


def test_fit_rejects_bad_initial() -> None:
    with pytest.raises(ValueError, match=r"initial must be four positive numbers"):
        fit_bgnbd(**_valid(), initial=(1.0, -2.0, 1.0, 1.0))


def test_predictions_reject_bad_parameters_and_horizons() -> None:
    data = _valid()
    with pytest.raises(ValueError, match=r"parameters must be positive and finite"):
        p_alive(_fit(0.2, 0.0, 1.0, 1.0), **data)
    with pytest.raises(ValueError, match=r"t must be finite and non-negative"):
        expected_purchases(_fit(0.2, 4.0, 1.0, 1.0), -1.0, **data)
    with pytest.raises(ValueError, match=r"t must be a scalar or have one value per customer \(12\)"):
        expected_purchases(_fit(0.2, 4.0, 1.0, 1.0), [1.0, 2.0], **data)
    with pytest.raises(ValueError, match=r"horizon_periods must be a positive whole number"):
        discounted_expected_purchases(_fit(0.2, 4.0, 0.8, 1.0), **data, horizon_periods=0, discount_rate_per_period=0.0)
    with pytest.raises(ValueError, match=r"discount_rate_per_period must be >= 0"):
        discounted_expected_purchases(
            _fit(0.2, 4.0, 0.8, 1.0), **data, horizon_periods=4, discount_rate_per_period=-0.1
        )


def test_the_likelihood_in_chunks_sums_as_in_one_pass(
    simulated: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run's fit takes its repeat buyers a chunk at a time, to bound its memory: the same sums."""
    import winback.segments.bgnbd_fit as bgnbd_fit

    frequency, recency, T = simulated[:3]
    params = (0.3, 4.5, 0.7, 2.2)
    whole = log_likelihood(params, frequency, recency, T), log_likelihood_gradient(params, frequency, recency, T)
    monkeypatch.setattr(bgnbd_fit, "LIKELIHOOD_CHUNK", 7_777)  # 200,000 customers: a few dozen chunks
    chunked = log_likelihood(params, frequency, recency, T), log_likelihood_gradient(params, frequency, recency, T)
    assert chunked[0] == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-11)
