"""Benchmark: storing a campaign's decisions (`warehouse.runs.record_decisions`) on a fresh SQLite file.

    .venv/bin/python bench/decisions_insert.py [--rows 562000]

Decisions arrive in the order the segments produce them; `record_decisions` stores them in customer order
so both (run, customer) indexes grow at their ends. `--shuffled-store` times the same insert without that
sort (the rows in random customer order), to compare. `--features` stores each decision's features too (a
lapsed customer's 15, as `segments.decision_features.STORED` gives them), serialised as JSON while inserting;
`--skips F` makes that share of the decisions skips, in no arm, whose features are not stored (a 1M campaign: 0.36).
Last line: rows=… seconds=… cpu_seconds=… order=… features=… skips=…
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from winback.segments.decision_features import features_kept
from winback.warehouse import runs
from winback.warehouse.bulk import insert_columns
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade
from winback.warehouse.models import Campaign, CampaignRun, Decision

NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
REASON = "skipped: not worth it; lapsed 120 days past a 30-day rhythm; p_active 0.31, value €12.40; gain €-0.32"


def decisions(rows: int) -> pd.DataFrame:
    """Decision-shaped rows in random customer order, a reason each, times to the millisecond."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({name: None for name in runs.DECISION_FIELDS}, index=range(rows))
    frame["customer_id"] = np.array([f"C{i:07d}" for i in rng.permutation(1_000_000)[:rows]], dtype=object)
    frame["segment"], frame["action"], frame["reason"] = "lapsed", "skip", REASON
    for col in ("p_active", "customer_value", "expected_gain", "offer_cost", "offer_value", "offer_amount"):
        frame[col] = rng.random(rows)
    millis = rng.integers(1_600_000_000_000, 1_700_000_000_000, rows)
    frame["last_order_at"] = pd.to_datetime(millis, unit="ms", utc=True)
    return frame


def features(rows: int) -> pd.DataFrame:
    """A lapsed customer's stored features: order history, scores, locale, winback's own history."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(index=range(rows))
    frame["frequency"] = rng.poisson(4.0, rows)
    for col in ("recency", "T"):
        frame[col] = rng.integers(0, 700, rows).astype(float)
    for col in ("days_since_last", "mean_spend", "total_spend", "expected_orders", "expected_spend", "overdue_ratio"):
        frame[col] = rng.gamma(2.0, 40.0, rows)
    frame["locale"] = np.array(["en_GB", "de_DE", "fr_FR", "en_US", "nl_NL"], dtype=object)[rng.integers(0, 5, rows)]
    frame["days_since_contact"] = np.where(rng.random(rows) < 0.7, np.nan, rng.gamma(2.0, 20.0, rows))
    for col in ("messages_30d", "past_contacts", "past_returns"):
        frame[col] = rng.poisson(0.5, rows)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=562_000)
    parser.add_argument("--shuffled-store", action="store_true", help="insert in the given (random) order")
    parser.add_argument("--features", action="store_true", help="store each decision's features (JSON) too")
    parser.add_argument("--skips", type=float, default=0.0, help="share of skips, whose features are not stored")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'decisions.db'}"
        engine = make_engine(url)
        upgrade(url, engine=engine)
        with engine.begin() as conn:
            conn.execute(Campaign.__table__.insert().values(id="c", kind="winback", config={}, created_at=NOW))
            run = {"campaign_id": "c", "as_of": NOW, "status": "started", "started_at": NOW, "stats": {}}
            run_id = conn.execute(CampaignRun.__table__.insert().values(**run)).inserted_primary_key[0]
        frame = decisions(args.rows)
        armed = np.random.default_rng(3).random(args.rows) >= args.skips
        frame["arm"] = np.where(armed, "treatment", None)
        known = features(args.rows) if args.features else None
        started, cpu = time.perf_counter(), time.process_time()
        with engine.begin() as conn:
            if args.shuffled_store:
                columns = {name: frame[name] for name in runs.DECISION_FIELDS}
                insert_columns(conn, Decision.__table__, columns, {"run_id": run_id, "decided_at": NOW})
            else:
                runs.record_decisions(conn, run_id, frame, known, features_kept=features_kept(frame))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
    order = "given (random)" if args.shuffled_store else "customer (record_decisions)"
    print(
        f"rows={args.rows} seconds={seconds:.2f} cpu_seconds={cpu:.2f} order={order} features={args.features} "
        f"skips={args.skips}"
    )


if __name__ == "__main__":
    main()
