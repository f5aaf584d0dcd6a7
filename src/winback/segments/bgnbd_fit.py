"""BG/NBD (Fader, Hardie & Lee 2005): the fitted parameters, input checks, log-likelihood and the fit.

`segments.bgnbd` describes the model and its conventions and gathers the public names; the predictions
are in `segments.bgnbd_predict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln

MIN_CUSTOMERS = 10
LIKELIHOOD_CHUNK = 1_000_000  # repeat buyers per pass of the likelihood
# L-BFGS-B works on log-parameters; the bounds only keep exp() finite on wild steps.
_LOG_BOUND = 25.0


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


def check_fit(fit: BgNbdFit) -> None:
    """Refuse parameters that are not all positive and finite (a ValueError naming them)."""
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

    # x > 0: logaddexp(A3, A4), a chunk of customers at a time: a dozen temporaries per customer, so at
    # 10M customers one pass over all would hold ~0.8 GiB of them (one chunk: the same sums up to 1M)
    for start in range(0, d.rep_x.size, LIKELIHOOD_CHUNK):
        part = slice(start, start + LIKELIHOOD_CHUNK)
        x, t_x, age = d.rep_x[part], d.rep_tx[part], d.rep_T[part]
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
        g_a += float(w.sum()) / a
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
