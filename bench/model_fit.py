"""Benchmark the customer-base models on 1,000,000 simulated customers.

Simulates BG/NBD purchases (CDNOW-like parameters) and Gamma-Gamma spend for a base acquired
over two years and observed weekly, then times: fit_bgnbd, fit_gamma_gamma, and scoring
(p_alive, 52-week expected purchases, 52-week discounted margin CLV). The last line is
machine-readable: ``fit_s=... score_s=... n=...``.

Usage: ``.venv/bin/python bench/model_fit.py [--customers N] [--seed S]``
"""

from __future__ import annotations

import os

# Two cores: keep BLAS from oversubscribing them (must precede the numpy import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

import numpy as np

from winback.segments.bgnbd import expected_purchases, fit_bgnbd, p_alive, simulate_bgnbd
from winback.segments.gamma_gamma import fit_gamma_gamma, margin_clv, simulate_gamma_gamma

TRUE_BGNBD = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 3.8, "v": 15.0}
HORIZON_WEEKS = 52
WEEKLY_DISCOUNT = 1.10 ** (1 / 52) - 1  # 10 % a year


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20050101)
    args = parser.parse_args(argv)
    n = args.customers

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    # Acquired uniformly over 104 weeks, observed at week 104: whole-week ages, as a weekly
    # rfm_summary gives them.
    T = rng.integers(1, 105, n).astype(float)
    sample = simulate_bgnbd(**TRUE_BGNBD, T=T, rng=rng)
    x, t_x = sample.frequency, sample.recency
    spend = simulate_gamma_gamma(**TRUE_GG, frequency=x, rng=rng)
    sim_s = time.perf_counter() - t0
    print(f"simulated {n:,} customers in {sim_s:.2f} s ({int((x > 0).sum()):,} repeat buyers)")

    t0 = time.perf_counter()
    bg = fit_bgnbd(x, t_x, T)
    bg_s = time.perf_counter() - t0
    print(
        f"fit_bgnbd        {bg_s:6.2f} s  r={bg.r:.4f} alpha={bg.alpha:.4f} a={bg.a:.4f} b={bg.b:.4f} "
        f"(true {TRUE_BGNBD}) iterations={bg.iterations} converged={bg.converged}"
    )
    t0 = time.perf_counter()
    gg = fit_gamma_gamma(x, spend)
    gg_s = time.perf_counter() - t0
    print(
        f"fit_gamma_gamma  {gg_s:6.2f} s  p={gg.p:.4f} q={gg.q:.4f} v={gg.v:.4f} (true {TRUE_GG}) "
        f"converged={gg.converged}"
    )

    t0 = time.perf_counter()
    alive = p_alive(bg, x, t_x, T)
    t1 = time.perf_counter()
    purchases = expected_purchases(bg, HORIZON_WEEKS, x, t_x, T)
    t2 = time.perf_counter()
    clv = margin_clv(
        bg,
        gg,
        x,
        t_x,
        T,
        spend,
        horizon_periods=HORIZON_WEEKS,
        margin=0.3,
        discount_rate_per_period=WEEKLY_DISCOUNT,
    )
    t3 = time.perf_counter()
    score_s = t3 - t0
    print(f"p_alive          {t1 - t0:6.2f} s  mean={alive.mean():.4f}")
    print(f"expected_purch.  {t2 - t1:6.2f} s  mean over {HORIZON_WEEKS} weeks={purchases.mean():.4f}")
    print(f"margin_clv       {t3 - t2:6.2f} s  mean={clv.mean():.2f} p99={np.quantile(clv, 0.99):.2f}")

    # Worst case for margin_clv: continuous ages, so no two customers share (x, T).
    jitter = T - rng.uniform(0.0, 1.0, n) * (T - t_x)
    t0 = time.perf_counter()
    margin_clv(
        bg,
        gg,
        x,
        np.minimum(t_x, jitter),
        jitter,
        spend,
        horizon_periods=HORIZON_WEEKS,
        margin=0.3,
        discount_rate_per_period=WEEKLY_DISCOUNT,
    )
    print(f"margin_clv, continuous T (no sharing) {time.perf_counter() - t0:6.2f} s")

    fit_s = bg_s + gg_s
    print(f"fit_s={fit_s:.2f} score_s={score_s:.2f} n={n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
