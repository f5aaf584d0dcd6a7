"""Benchmark the uplift model as a campaign run uses it: trained at the run's start, scored on 1M decisions.

The first run builds, once, a history of closed, tracked runs of one campaign in winback's state (SQLite
under ``bench/.cache/``): ``--runs`` runs of ``--customers / --runs`` randomized customers each (1,000,000
in all), every decision with the features a real run stores, every return tracked after its window closed.
The true effects are the simulation's (`segments.uplift.simulate`: persuadables, sure things, lost causes,
sleeping dogs), and a returner's revenue in the window follows their order value.

Then it times, on this 2-core machine:

* ``fit_s``: fitting the return and the spend models on 500,000 of those customers (selection by
  cross-validated Qini, fit, validation on held-out runs; the target is <= 30 s);
* ``run_training_s``: `train_decision_uplift` as a run's start calls it: reading the closed runs and their
  features from the database, sampling, fitting both models;
* ``score_1m_s``: the return model's prediction for 1,000,000 decision frames;
* ``decision_scoring_s``: `option_lifts` on 1,000,000 priced candidates, as `decide` calls it: both options
  (the offer and the message alone), both models (the target is <= 3 s); ``decision_scoring_cpu_s`` is the
  process's CPU time for the same, which other work on a shared machine does not inflate.

The last line is machine-readable: ``fit_s=... run_training_s=... score_1m_s=... decision_scoring_s=...
decision_scoring_cpu_s=...``.

Usage: ``.venv/bin/python bench/uplift_history.py [--customers N] [--runs R] [--fit-rows N]``
"""

from __future__ import annotations

import os

# Two cores: keep BLAS from oversubscribing them (must precede the numpy import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select

from winback.segments.decision_features import stored_features
from winback.segments.option_lifts import option_lifts
from winback.segments.uplift.decision_model import fit_decision_models, train_decision_uplift
from winback.segments.uplift.simulate import RETURN_TREATED, RETURN_UNTREATED, kind_probabilities
from winback.warehouse.bulk import insert_columns
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade
from winback.warehouse.models import Campaign, CampaignRun, Return
from winback.warehouse.runs import record_decisions
from winback.warehouse.uplift_history import closed_run_arms

CACHE = Path(__file__).resolve().parent / ".cache"
CAMPAIGN = "bench-uplift"
AS_OF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
KINDS = np.array(["percent_discount", "store_credit", "free_shipping", "none"], dtype=object)
LOCALES = np.array(["de_DE", "fr_FR", "en_GB", "en_US", "nl_NL"], dtype=object)
CATEGORIES = np.array(["late_delivery", "damaged", "wrong_item", "billing"], dtype=object)


def candidates(n: int, rng: np.random.Generator, prefix: str) -> pd.DataFrame:
    """Priced candidates as a run's decision frame holds them: the decision's columns and the stored features."""
    since = rng.gamma(2.0, 110.0, n).round() + 30
    frequency = rng.poisson(3.0, n).astype(float)
    mean_spend = np.exp(rng.normal(4.0, 0.6, n)).round(2)
    aggrieved = rng.random(n) < 0.3
    severity = np.where(aggrieved, rng.integers(1, 4, n), np.nan)
    kind = rng.choice(KINDS, n, p=[0.45, 0.2, 0.15, 0.2])
    value = np.where(kind == "none", 0.0, np.where(kind == "percent_discount", 15.0, 10.0))
    tenure = since + rng.gamma(2.0, 200.0, n).round()
    return pd.DataFrame(
        {
            "customer_id": [f"{prefix}{i:07d}" for i in range(n)],
            "segment": np.where(aggrieved, "aggrieved", "lapsed"),
            "failure_category": np.where(aggrieved, rng.choice(CATEGORIES, n), None),
            "severity": severity,
            "p_active": np.clip(1.2 - since / 500, 0.02, 0.99).round(3),
            "customer_value": (mean_spend * frequency * 0.3 * np.clip(1.2 - since / 500, 0.02, 1)).round(2),
            "channel": np.where(rng.random(n) < 0.85, "email", "sms"),
            "offer_kind": kind,
            "offer_value": value,
            "offer_amount": np.where(kind == "percent_discount", (mean_spend * 0.15).round(2), value),
            "offer_cost": (value * 0.35).round(2),
            "frequency": frequency,
            "recency": tenure - since,
            "T": tenure,
            "days_since_last": since,
            "mean_spend": mean_spend,
            "total_spend": (mean_spend * (frequency + 1)).round(2),
            "expected_orders": (frequency / tenure * 365 * np.clip(1.2 - since / 500, 0.02, 1)).round(3),
            "expected_spend": mean_spend,
            "overdue_ratio": (since / np.maximum(tenure / (frequency + 1), 1)).round(2),
            "unresolved": np.where(aggrieved, rng.random(n) < 0.4, None),
            "order_amount": np.where(aggrieved, mean_spend, np.nan),
            "days_since_failure": np.where(aggrieved, rng.integers(1, 30, n), np.nan),
            "locale": rng.choice(LOCALES, n),
            "days_since_contact": np.where(rng.random(n) < 0.6, rng.integers(15, 400, n), np.nan),
            "messages_30d": rng.poisson(0.3, n),
            "past_contacts": rng.poisson(1.5, n),
            "past_returns": rng.poisson(0.3, n),
        }
    )


def _outcomes(frame: pd.DataFrame, treated: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (0/1) and revenue in the window from the simulation's four kinds."""
    truth = pd.DataFrame({"recency_days": frame["days_since_last"], "severity": frame["severity"],
                          "past_contacts": frame["past_contacts"], "frequency": frame["frequency"] + 1})  # fmt: skip
    probs = kind_probabilities(truth)
    kind = (probs.cumsum(axis=1) > rng.random(len(frame))[:, None]).argmax(axis=1)
    p = np.where(treated, RETURN_TREATED[kind], RETURN_UNTREATED[kind])
    returned = rng.random(len(frame)) < p
    revenue = np.where(returned, frame["mean_spend"].to_numpy() * rng.gamma(2.0, 0.6, len(frame)), 0.0)
    return returned, revenue.round(2)


def build_history(url: str, customers: int, runs: int, seed: int) -> None:
    """Closed, tracked runs of one campaign, every decision with its features: what a run's start trains on."""
    engine = make_engine(url)
    upgrade(url, engine=engine)
    rng = np.random.default_rng(seed)
    per_run = customers // runs
    with engine.begin() as conn:
        conn.execute(insert(Campaign).values(id=CAMPAIGN, kind="winback", config={}, created_at=AS_OF))
    for r in range(runs):
        as_of = AS_OF - dt.timedelta(days=40 * (runs - r) + 40)
        frame = candidates(per_run, rng, f"R{r}C")
        held = rng.random(per_run) < 0.2
        returned, revenue = _outcomes(frame, ~held, rng)
        arm = np.where(held, "holdout", "treatment")
        decisions = frame.assign(action=np.where(held, "holdout", "contact"), arm=arm, failure_id=None,
                                 expected_gain=1.0, reason="bench", last_order_at=pd.NaT, predicted_uplift=np.nan,
                                 predicted_spend_uplift=np.nan, variant=None)  # fmt: skip
        with engine.begin() as conn:
            run = {"campaign_id": CAMPAIGN, "as_of": as_of, "journey_key": "", "status": "completed"}
            run_id = conn.execute(
                insert(CampaignRun).values(**run, started_at=as_of, stats={}).returning(CampaignRun.id)
            ).scalar_one()
            record_decisions(conn, run_id, decisions, stored_features(frame))
            columns = {"customer_id": frame["customer_id"], "arm": decisions["arm"], "returned": returned.tolist(),
                       "orders": returned.astype(int).tolist(), "revenue": revenue.tolist()}  # fmt: skip
            constants = {"run_id": run_id, "redeemed": False, "window_days": 30,
                         "tracked_at": as_of + dt.timedelta(days=31), "first_return_at": None}  # fmt: skip
            insert_columns(conn, Return.__table__, columns, constants)
        print(f"history: run {r + 1} of {runs} stored ({per_run:,} customers)", flush=True)
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fit-rows", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"uplift-history-{args.customers}-{args.runs}-{args.seed}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        build_history(f"sqlite:///{partial}", args.customers, args.runs, args.seed)
        partial.rename(path)
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(Return)).scalar_one()
        print(f"history: {stored:,} randomized customers in {args.runs} closed runs ({path.name})")

        t0 = time.perf_counter()
        uplift = train_decision_uplift(conn, CAMPAIGN, AS_OF)
        run_training_s = time.perf_counter() - t0
        s = uplift.summary
        print(f"run start: {s.get('learner')} on {s.get('n_training'):,} customers, held-out Qini "
              f"{s.get('validation_qini') or 0:.4f}; spend: {s.get('spend_learner')}, used {s.get('spend_used')}, "
              f"Qini {s.get('spend_validation_qini') or 0:.2f}")  # fmt: skip

        arms = closed_run_arms(conn, CAMPAIGN, AS_OF)
    t0 = time.perf_counter()
    fit_decision_models(arms, max_rows=args.fit_rows)
    fit_s = time.perf_counter() - t0

    frame = candidates(1_000_000, np.random.default_rng(args.seed + 1), "N")
    t0 = time.perf_counter()
    uplift.predict(frame)
    score_1m_s = time.perf_counter() - t0
    prior = {str(k): 0.03 for k in KINDS}
    t0, c0 = time.perf_counter(), time.process_time()
    lifts = option_lifts(frame, prior, uplift)
    decision_scoring_s, decision_scoring_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    print(f"decision scoring: {int(lifts.offer_by_model.sum()):,} of 1,000,000 decided by the model")
    print(f"fit_s={fit_s:.2f} run_training_s={run_training_s:.2f} score_1m_s={score_1m_s:.2f} "
          f"decision_scoring_s={decision_scoring_s:.2f} "
          f"decision_scoring_cpu_s={decision_scoring_cpu_s:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
