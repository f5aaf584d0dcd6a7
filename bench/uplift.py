"""Benchmark the uplift model: fit on 500,000 experiment rows, score 1,000,000 customers.

Simulates a randomized campaign with known heterogeneous effects (segments/uplift/simulate.py, 80 % treated
as in a campaign with a 20 % holdout), then times fit_uplift (selection by cross-validated Qini, fit, honest
validation) and UpliftModel.predict on a fresh population (encoding included, reading the CSV not). Targets
(issue 15): fit <= 30 s, scoring 1M <= 3 s on a 2-core machine. The last line is machine-readable:
``fit_rows=... fit_s=... score_rows=... score_s=...``.

Usage: ``.venv/bin/python bench/uplift.py [--fit-rows N] [--score-rows N] [--seed S]``
"""

from __future__ import annotations

import os

# Two cores: keep BLAS from oversubscribing them (must precede the numpy import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

import numpy as np

from winback.segments.uplift import fit_uplift, qini_coefficient
from winback.segments.uplift.simulate import simulate_experiment

TRUTH = ["kind", "true_uplift", "spend"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-rows", type=int, default=500_000)
    parser.add_argument("--score-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)

    experiment = simulate_experiment(args.fit_rows, seed=args.seed, treated_share=0.8)
    population = simulate_experiment(args.score_rows, seed=args.seed + 1).drop(columns=["treatment", "returned"])

    t0 = time.perf_counter()
    model, report = fit_uplift(experiment.drop(columns=TRUTH), "treatment", "returned", exclude=("customer_id",))
    fit_s = time.perf_counter() - t0
    print(f"chose {report.chosen}: cv Qini {report.cv_qini:.4f} ± {report.cv_qini_se:.4f}")
    print(
        f"held-out Qini {report.validation_qini:.4f} (95% CI {report.validation_qini_low:.4f} to "
        f"{report.validation_qini_high:.4f}) on {report.n_validation:,} rows"
    )

    t0 = time.perf_counter()
    uplift = model.predict(population)
    score_s = time.perf_counter() - t0
    truth = population["true_uplift"].to_numpy()
    print(f"scored: correlation with the true uplift {np.corrcoef(uplift, truth)[0, 1]:.3f}")

    check = simulate_experiment(100_000, seed=args.seed + 2, treated_share=0.5)
    qini = qini_coefficient(model.predict(check), check["treatment"], check["returned"])
    oracle = qini_coefficient(check["true_uplift"], check["treatment"], check["returned"])
    print(f"fresh randomized sample: Qini {qini:.4f} vs {oracle:.4f} targeting by the true uplift")
    print(f"fit_rows={args.fit_rows} fit_s={fit_s:.2f} score_rows={args.score_rows} score_s={score_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
