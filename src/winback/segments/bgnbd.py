"""BG/NBD purchase model (Fader, Hardie & Lee 2005): fit, P(alive) and expected future purchases.

Why BG/NBD: it needs only (frequency, recency, T) per customer, fits a million customers in about
a second, and its P(alive) is what tells a lapsed-but-loyal customer (worth winning back) from one
who has quietly left. Everything here is plain numpy/scipy so it runs inside a flow, a CLI or a test.

Conventions (the paper's):

* ``frequency`` x: number of REPEAT purchases (purchase periods after the first) in (0, T].
* ``recency`` t_x: the customer's age at the last repeat purchase (0 when x = 0). This is *not*
  the RFM "time since last purchase"; passing that by mistake is caught where it can be.
* ``T``: the customer's age at the end of the observation window, in the same time unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

MIN_CUSTOMERS = 10
# L-BFGS-B works on log-parameters; the bounds only keep exp() finite on wild steps.
_LOG_BOUND = 25.0
# (a - 1) appears as a divisor in the expectation formulas; its limit at a = 1 is finite.
_A_ONE_NUDGE = 1e-7


@dataclass(frozen=True)
class BgNbdFit:
    """Maximum-likelihood BG/NBD parameters.

    ``r, alpha`` shape/rate of the Gamma purchase-rate heterogeneity; ``a, b`` of the Beta
    drop-out heterogeneity. ``log_likelihood`` is the total (not mean) over ``n_customers``.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int

    @property
    def params(self) -> np.ndarray:
        """(r, alpha, a, b) as an array, the order every function here uses."""
        return np.array([self.r, self.alpha, self.a, self.b])

    def to_dict(self) -> dict[str, float | int | bool]:
        """JSON-able plain dict."""
        return asdict(self)


# --------------------------------------------------------------------------- input checks


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values, first index {_first_bad(bad)}")
    neg = arr < 0
    if neg.any():
        raise ValueError(f"{name} has {int(neg.sum())} negative values, first index {_first_bad(neg)}")
    return arr


def validate_frt(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, min_customers: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check (frequency, recency, T) and return them as float arrays.

    Raises ``ValueError`` naming the problem, how many customers have it and the first index, so
    a caller can find the row: length mismatch, NaN, negatives, non-integer frequency,
    recency > T, frequency > 0 with recency 0, frequency 0 with recency > 0 (the usual sign that
    "days since last purchase" was passed as recency), too few customers.
    """
    x = _as_1d("frequency", frequency)
    t_x = _as_1d("recency", recency)
    age = _as_1d("T", T)
    if not x.size == t_x.size == age.size:
        raise ValueError(f"frequency, recency and T must have the same length (got {x.size}, {t_x.size}, {age.size})")
    if x.size < min_customers:
        raise ValueError(f"need at least {min_customers} customers to fit, got {x.size}")
    frac = x != np.round(x)
    if frac.any():
        raise ValueError(
            f"frequency must count whole repeat purchases; {int(frac.sum())} non-integer values, "
            f"first index {_first_bad(frac)}"
        )
    late = t_x > age + 1e-9 * np.maximum(age, 1.0)
    if late.any():
        raise ValueError(f"recency greater than T for {int(late.sum())} customers, first index {_first_bad(late)}")
    zero_rec = (x > 0) & (t_x == 0)
    if zero_rec.any():
        raise ValueError(
            f"recency is 0 for {int(zero_rec.sum())} customers with frequency > 0 (a repeat purchase "
            f"happens after the first one), first index {_first_bad(zero_rec)}"
        )
    stray = (x == 0) & (t_x > 0)
    if stray.any():
        raise ValueError(
            f"recency > 0 for {int(stray.sum())} customers with frequency 0, first index "
            f"{_first_bad(stray)}; recency is the age at the last repeat purchase, not the time since it"
        )
    return x, t_x, age


def _check_fit(fit: BgNbdFit) -> None:
    params = fit.params
    if not (np.all(np.isfinite(params)) and np.all(params > 0)):
        raise ValueError(f"BG/NBD parameters must be positive and finite, got {params.tolist()}")


# --------------------------------------------------------------------------- likelihood


@dataclass(frozen=True)
class _Data:
    """Per-customer arrays prepared once per fit: the x-only special functions go on unique x."""

    x_unique: np.ndarray
    x_counts: np.ndarray
    rep_x: np.ndarray  # repeat buyers (x > 0) only
    rep_tx: np.ndarray
    rep_T: np.ndarray
    zero_T: np.ndarray  # customers with x == 0
    n: int


def _prepare(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> _Data:
    x_unique, x_counts = np.unique(x, return_counts=True)
    rep = x > 0
    return _Data(
        x_unique=x_unique,
        x_counts=x_counts.astype(float),
        rep_x=x[rep],
        rep_tx=t_x[rep],
        rep_T=age[rep],
        zero_T=age[~rep],
        n=x.size,
    )


def _loglik_and_grad(theta: np.ndarray, d: _Data) -> tuple[float, np.ndarray]:
    """Total log-likelihood and its gradient w.r.t. (r, alpha, a, b).

    Per customer (FHL 2005, eq. 6 in logs), with A1 = ln G(r+x) - ln G(r) + r ln(alpha),
    A2 = ln B(a, b+x) - ln B(a, b), A3 = -(r+x) ln(alpha+T) and, for x > 0,
    A4 = ln a - ln(b+x-1) - (r+x) ln(alpha+t_x):
        ll = A1 + A2 + logaddexp(A3, A4)      (just A1 + A2 + A3 when x = 0)
    The derivative of the logaddexp is (1-w) dA3 + w dA4 with w = expit(A4 - A3).
    """
    r, alpha, a, b = theta
    xu, cu = d.x_unique, d.x_counts

    # Terms depending on x only: evaluated on the handful of distinct frequencies.
    ll = float(cu @ (gammaln(r + xu) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xu) - betaln(a, b)))
    psi_ab = digamma(a + b)
    psi_abx = digamma(a + b + xu)
    g_r = float(cu @ (digamma(r + xu) - digamma(r) + np.log(alpha)))
    g_alpha = d.n * r / alpha
    g_a = float(cu @ (psi_ab - psi_abx))
    g_b = float(cu @ (digamma(b + xu) - psi_abx - digamma(b) + psi_ab))

    # x == 0: only A3.
    log_aT0 = np.log(alpha + d.zero_T)
    ll -= r * log_aT0.sum()
    g_r -= log_aT0.sum()
    g_alpha -= r * np.sum(1.0 / (alpha + d.zero_T))

    # x > 0: logaddexp(A3, A4).
    x, t_x, age = d.rep_x, d.rep_tx, d.rep_T
    rx = r + x
    log_aT = np.log(alpha + age)
    log_atx = np.log(alpha + t_x)
    log_bx1 = np.log(b + x - 1.0)
    a3 = -rx * log_aT
    a4 = np.log(a) - log_bx1 - rx * log_atx
    diff = a4 - a3
    ll += float(np.sum(np.maximum(a3, a4) + np.log1p(np.exp(-np.abs(diff)))))
    w = expit(diff)
    one_w = 1.0 - w
    # Elementwise products and sums rather than `@`: a threaded BLAS dot is slower here, not faster.
    g_r -= float(np.sum(one_w * log_aT + w * log_atx))
    g_alpha -= float(np.sum(rx * (one_w / (alpha + age) + w / (alpha + t_x))))
    w_sum = float(w.sum())
    g_a += w_sum / a
    g_b -= float(np.sum(w / (b + x - 1.0)))
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def log_likelihood(params: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> float:
    """Total BG/NBD log-likelihood at ``params`` = (r, alpha, a, b)."""
    x, t_x, age = validate_frt(frequency, recency, T)
    return _loglik_and_grad(np.asarray(params, dtype=float), _prepare(x, t_x, age))[0]


def log_likelihood_gradient(params: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Analytic gradient of :func:`log_likelihood` w.r.t. (r, alpha, a, b)."""
    x, t_x, age = validate_frt(frequency, recency, T)
    return _loglik_and_grad(np.asarray(params, dtype=float), _prepare(x, t_x, age))[1]


def _initial_guess(x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Starting point: r = 1 and alpha matching the observed purchase rate; a = b = 1 (a flat drop-out prior)."""
    rate = (x.sum() + 1.0) / max(float(age.sum()), 1e-9)
    return np.array([1.0, 1.0 / rate, 1.0, 1.0])


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    initial: tuple[float, float, float, float] | None = None,
) -> BgNbdFit:
    """Maximum-likelihood BG/NBD fit.

    L-BFGS-B on log-parameters (so positivity needs no constraint) with the analytic gradient,
    minimising the mean negative log-likelihood so tolerances do not depend on the customer count.

    Parameters
    ----------
    frequency, recency, T
        Per-customer repeat purchases, age at last repeat purchase, age at observation end.
    initial
        Starting (r, alpha, a, b); a data-driven guess when omitted.

    Returns
    -------
    BgNbdFit
        ``converged`` is the optimiser's own success flag; check it before trusting the numbers.
    """
    x, t_x, age = validate_frt(frequency, recency, T, min_customers=MIN_CUSTOMERS)
    data = _prepare(x, t_x, age)
    start = _initial_guess(x, age) if initial is None else np.asarray(initial, dtype=float)
    if start.shape != (4,) or not np.all(np.isfinite(start)) or np.any(start <= 0):
        raise ValueError(f"initial must be four positive numbers (r, alpha, a, b), got {initial!r}")

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        ll, grad = _loglik_and_grad(theta, data)
        return -ll / data.n, -grad * theta / data.n

    result = minimize(
        objective,
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    r, alpha, a, b = np.exp(result.x)
    return BgNbdFit(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float(-result.fun * data.n),
        n_customers=int(data.n),
        converged=bool(result.success),
        iterations=int(result.nit),
    )


# --------------------------------------------------------------------------- predictions


def p_alive(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(customer still active at T | x, t_x, T) (FHL 2005, eq. 13).

    1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), computed as expit of the log-odds
    so long absences give a clean 0 rather than an overflow. Customers with no repeat purchase get
    exactly 1: in BG/NBD a customer can only drop out right after a repeat purchase.
    """
    _check_fit(fit)
    x, t_x, age = validate_frt(frequency, recency, T)
    return _p_alive(fit, x, t_x, age)


def _p_alive(fit: BgNbdFit, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    rep = x > 0
    out = np.ones_like(x)
    xr = x[rep]
    log_odds_dead = (
        np.log(fit.a)
        - np.log(fit.b + xr - 1.0)
        + (fit.r + xr) * (np.log(fit.alpha + age[rep]) - np.log(fit.alpha + t_x[rep]))
    )
    out[rep] = expit(-log_odds_dead)
    return out


def _expected_if_alive(fit: BgNbdFit, x: np.ndarray, age: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T, x, T]; needs no recency.

    FHL 2005 eq. 10 without its P(alive) factor:
        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
    with z = t/(alpha+T+t). Euler's transformation turns the bracketed product into
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose parameters do not grow with x, so heavy
    buyers do not overflow 2F1 to inf times a 0 power. 1 - (1-z)^(a-1) F is taken as
    -expm1(...) to keep precision when a is close to 1. The formula holds (by analytic
    continuation, checked against simulation) for a + b + x < 1 as well.
    """
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    if abs(a - 1.0) < _A_ONE_NUDGE:
        a = 1.0 + _A_ONE_NUDGE
    c = a + b + x - 1.0
    z = t / (alpha + age + t)
    f = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    with np.errstate(divide="ignore"):
        log_term = (a - 1.0) * np.log1p(-z) + np.log(np.abs(f))
    # F > 0 whenever c > 0; with a + b + x < 1 (c < 0) it can turn negative, and then
    # 1 - (1-z)^(a-1) F = 1 + |...| has no cancellation to guard against.
    bracket = np.where(f > 0, -np.expm1(log_term), 1.0 + np.sign(-f) * np.exp(log_term))
    return c / (a - 1.0) * bracket


def _as_horizon(t: ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(t, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"t must be a scalar or have one value per customer ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("t must be finite and non-negative")
    return arr


def expected_purchases(
    fit: BgNbdFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected repeat purchases in the next ``t`` periods, E[Y(t) | x, t_x, T] (FHL 2005, eq. 10).

    ``t`` is a scalar or one horizon per customer, in the unit of T.
    """
    _check_fit(fit)
    x, t_x, age = validate_frt(frequency, recency, T)
    horizon = _as_horizon(t, x.size)
    return _p_alive(fit, x, t_x, age) * _expected_if_alive(fit, x, age, horizon)


def expected_purchases_new(fit: BgNbdFit, t: ArrayLike) -> np.ndarray:
    """Unconditional E[X(t)] for a customer just acquired (FHL 2005, eq. 9).

    Used for calibration checks (cumulative repeat purchases of a cohort) and as the x = 0, T = 0
    special case of :func:`expected_purchases`. Returns an array shaped like ``t``.
    """
    _check_fit(fit)
    horizon = np.atleast_1d(np.asarray(t, dtype=float))
    if not np.all(np.isfinite(horizon)) or np.any(horizon < 0):
        raise ValueError("t must be finite and non-negative")
    zeros = np.zeros_like(horizon)
    out = _expected_if_alive(fit, zeros, zeros, horizon)
    return out.reshape(np.shape(t))


def discounted_expected_purchases(
    fit: BgNbdFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    horizon_periods: int,
    discount_rate_per_period: float,
) -> np.ndarray:
    """Sum over k = 1..horizon of (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k per customer.

    The building block of CLV: purchases expected in period k are discounted k periods.
    E[Y(k) | x, t_x, T] = P(alive) * G(x, T, k), and G depends only on (x, T); with T measured
    in whole periods (as :func:`segments.rfm.rfm_summary` produces) a million customers share a
    few thousand distinct (x, T) pairs, so 2F1 is evaluated on those only.
    """
    _check_fit(fit)
    x, t_x, age = validate_frt(frequency, recency, T)
    if int(horizon_periods) != horizon_periods or horizon_periods < 1:
        raise ValueError(f"horizon_periods must be a positive whole number, got {horizon_periods!r}")
    if not np.isfinite(discount_rate_per_period) or discount_rate_per_period < 0:
        raise ValueError(f"discount_rate_per_period must be >= 0, got {discount_rate_per_period!r}")
    _, x_idx = np.unique(x, return_inverse=True)
    t_vals, t_idx = np.unique(age, return_inverse=True)
    key = x_idx.astype(np.int64) * t_vals.size + t_idx
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    ux, u_age = x[first], age[first]
    total = np.zeros(first.size)
    previous = np.zeros(first.size)
    for k in range(1, int(horizon_periods) + 1):
        current = _expected_if_alive(fit, ux, u_age, np.full(first.size, float(k)))
        total += (current - previous) / (1.0 + discount_rate_per_period) ** k
        previous = current
    return _p_alive(fit, x, t_x, age) * total[inverse]


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
