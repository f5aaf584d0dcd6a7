"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV") and margin CLV.

Why: BG/NBD says how many purchases to expect; the Gamma-Gamma model says what each is worth,
shrinking a customer's observed average order value towards the population mean in proportion to
how little evidence (how few repeat purchases) there is. Together they give a discounted margin
per customer, which is what a win-back offer budget should be compared with.

Model: each transaction value z ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers. Only the
mean repeat-purchase value z-bar of customers with x > 0 repeat purchases is used; the paper
writes gamma as "v" here to keep it apart from the function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from winback.segments.bgnbd import BgNbdFit, discounted_expected_purchases

MIN_REPEAT_BUYERS = 10
_LOG_BOUND = 25.0


@dataclass(frozen=True)
class GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, v = gamma) over the repeat buyers."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n_customers: int
    converged: bool

    @property
    def params(self) -> np.ndarray:
        """(p, q, v) as an array."""
        return np.array([self.p, self.q, self.v])

    @property
    def population_mean_spend(self) -> float:
        """E[Z] = p v / (q - 1): the prior mean order value, used for customers without repeats."""
        return self.p * self.v / (self.q - 1.0)

    def to_dict(self) -> dict[str, float | int | bool]:
        """JSON-able plain dict."""
        return asdict(self)


def _spend_inputs(frequency: ArrayLike, mean_spend: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(mean_spend, dtype=float)
    if x.ndim != 1 or m.ndim != 1:
        raise ValueError(f"frequency and mean_spend must be one-dimensional, got {x.shape} and {m.shape}")
    if x.size != m.size:
        raise ValueError(f"frequency and mean_spend must have the same length (got {x.size}, {m.size})")
    bad = ~np.isfinite(x) | (x < 0)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise ValueError(f"frequency must be finite and >= 0; {int(bad.sum())} bad values, first index {idx}")
    rep = x > 0
    bad_spend = rep & ~(np.isfinite(m) & (m > 0))
    if bad_spend.any():
        idx = int(np.flatnonzero(bad_spend)[0])
        raise ValueError(
            f"mean_spend must be positive for repeat buyers; {int(bad_spend.sum())} customers with "
            f"frequency > 0 have zero, negative or missing spend, first index {idx}"
        )
    return x, m


@dataclass(frozen=True)
class _Data:
    """Repeat buyers' data with the parameter-free sums precomputed once per fit."""

    x: np.ndarray
    xm: np.ndarray  # x * z-bar: the customer's total repeat spend
    x_unique: np.ndarray
    x_counts: np.ndarray
    sum_log_m: float
    sum_x_log_m: float
    sum_x_log_x: float
    n: int


def _prepare(x: np.ndarray, m: np.ndarray) -> _Data:
    x_unique, x_counts = np.unique(x, return_counts=True)
    log_m = np.log(m)
    return _Data(
        x=x,
        xm=x * m,
        x_unique=x_unique,
        x_counts=x_counts.astype(float),
        sum_log_m=float(log_m.sum()),
        sum_x_log_m=float(np.sum(x * log_m)),
        sum_x_log_x=float(np.sum(x * np.log(x))),
        n=x.size,
    )


def _loglik_and_grad(theta: np.ndarray, d: _Data) -> tuple[float, np.ndarray]:
    """Total log-likelihood of the repeat buyers' mean spend, and its gradient w.r.t. (p, q, v).

    ln f = ln G(px+q) - ln G(px) - ln G(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(v + x m)
    The Gamma-function terms depend on x only and are evaluated on the distinct frequencies.
    """
    p, q, v = theta
    xu, cu = d.x_unique, d.x_counts
    pxu = p * xu
    log_vxm = np.log(v + d.xm)
    px_q = p * d.x + q
    ll = (
        cu @ (gammaln(pxu + q) - gammaln(pxu))
        - d.n * (gammaln(q) - q * np.log(v))
        + p * (d.sum_x_log_m + d.sum_x_log_x)
        - d.sum_log_m
        - np.sum(px_q * log_vxm)
    )
    psi_pxq = digamma(pxu + q)
    g_p = cu @ (xu * (psi_pxq - digamma(pxu))) + d.sum_x_log_m + d.sum_x_log_x - np.sum(d.x * log_vxm)
    g_q = cu @ psi_pxq - d.n * (digamma(q) - np.log(v)) - log_vxm.sum()
    g_v = d.n * q / v - np.sum(px_q / (v + d.xm))
    return float(ll), np.array([g_p, g_q, g_v], dtype=float)


def _repeat_buyers(frequency: ArrayLike, mean_spend: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, m = _spend_inputs(frequency, mean_spend)
    rep = x > 0
    return x[rep], m[rep]


def log_likelihood(params: ArrayLike, frequency: ArrayLike, mean_spend: ArrayLike) -> float:
    """Total Gamma-Gamma log-likelihood at ``params`` = (p, q, v), repeat buyers only."""
    x, m = _repeat_buyers(frequency, mean_spend)
    return _loglik_and_grad(np.asarray(params, dtype=float), _prepare(x, m))[0]


def log_likelihood_gradient(params: ArrayLike, frequency: ArrayLike, mean_spend: ArrayLike) -> np.ndarray:
    """Analytic gradient of :func:`log_likelihood` w.r.t. (p, q, v)."""
    x, m = _repeat_buyers(frequency, mean_spend)
    return _loglik_and_grad(np.asarray(params, dtype=float), _prepare(x, m))[1]


def fit_gamma_gamma(frequency: ArrayLike, mean_spend: ArrayLike) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit on the customers with frequency > 0.

    ``mean_spend`` is each customer's average REPEAT purchase value (first purchase excluded, as
    in the paper); values for frequency-0 customers are ignored. L-BFGS-B on log-parameters with
    the analytic gradient. Raises ``ValueError`` when the fitted q <= 1, because the population
    mean spend p v / (q - 1) is then infinite and no CLV can be computed from it.
    """
    x, m = _repeat_buyers(frequency, mean_spend)
    if x.size < MIN_REPEAT_BUYERS:
        raise ValueError(f"need at least {MIN_REPEAT_BUYERS} repeat buyers (frequency > 0), got {x.size}")
    data = _prepare(x, m)
    n = data.n
    # Start from p = 1, q = 2 (finite mean) with v matching the observed mean spend.
    start = np.log([1.0, 2.0, float(np.mean(m))])

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        ll, grad = _loglik_and_grad(theta, data)
        return -ll / n, -grad * theta / n

    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 3,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    p, q, v = np.exp(result.x)
    if q <= 1.0:
        raise ValueError(
            f"fitted q = {q:.4g} <= 1: the spend distribution's mean is infinite; check for extreme "
            "order values or too few repeat buyers"
        )
    return GammaGammaFit(
        p=float(p),
        q=float(q),
        v=float(v),
        log_likelihood=float(-result.fun * n),
        n_customers=int(n),
        converged=bool(result.success),
    )


def expected_spend(fit: GammaGammaFit, frequency: ArrayLike, mean_spend: ArrayLike) -> np.ndarray:
    """Conditional expected average order value E[Z | x, z-bar] = p (v + x z-bar) / (p x + q - 1).

    A weighted average of the population mean p v / (q - 1) and the customer's own z-bar, with
    weight p x / (p x + q - 1) on the latter; frequency-0 customers get the population mean
    whatever their mean_spend says.
    """
    x, m = _spend_inputs(frequency, mean_spend)
    m = np.where(x > 0, m, 0.0)
    return fit.p * (fit.v + x * m) / (fit.p * x + fit.q - 1.0)


def margin_clv(
    bgnbd_fit: BgNbdFit,
    gg_fit: GammaGammaFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    mean_spend: ArrayLike,
    *,
    horizon_periods: int,
    margin: float,
    discount_rate_per_period: float,
    known: dict[tuple[float, float], float] | None = None,
) -> np.ndarray:
    """Expected discounted margin per customer over the next ``horizon_periods`` periods.

    margin * E[spend | x, z-bar] * sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k, k = 1..horizon: the
    increments of BG/NBD expected purchases period by period, each discounted to today. Periods
    are the unit of T (weeks for the usual weekly summary); ``discount_rate_per_period`` must be
    expressed per that unit (for 10 %/year on weekly data: 1.10 ** (1/52) - 1).

    Parameters
    ----------
    margin
        Fraction of revenue kept as margin, in [0, 1].
    known
        Passed on to :func:`discounted_expected_purchases` (sums already evaluated with this fit).
    """
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin must be a fraction in [0, 1] (got {margin!r}); pass 0.3 for 30 %")
    spend = expected_spend(gg_fit, frequency, mean_spend)
    purchases = discounted_expected_purchases(
        bgnbd_fit,
        frequency,
        recency,
        T,
        horizon_periods=horizon_periods,
        discount_rate_per_period=discount_rate_per_period,
        known=known,
    )
    return margin * spend * purchases


def simulate_gamma_gamma(p: float, q: float, v: float, frequency: ArrayLike, *, rng: np.random.Generator) -> np.ndarray:
    """Draw each customer's mean repeat spend given their frequency (0 where frequency is 0).

    nu ~ Gamma(q, rate v); the mean of x values Gamma(p, rate nu) is Gamma(p x, rate x nu).
    """
    x = np.asarray(frequency, dtype=float)
    nu = rng.gamma(q, 1.0 / v, x.size)
    rep = x > 0
    out = np.zeros(x.size)
    out[rep] = rng.gamma(p * x[rep], 1.0 / (x[rep] * nu[rep]))
    return out
