"""The demo's heterogeneous world: who is moved, who is pushed away, past runs replayed on the generated future."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF
from sqlalchemy import Engine, select, text
from test_campaign_path import SRC, run_campaign

from winback.app.demo_data import effects, simulate_heterogeneous_response
from winback.app.demo_data.tables import withheld_orders
from winback.config import CampaignConfig
from winback.warehouse.returns import track_run


def _customers(**columns: object) -> pd.DataFrame:
    base = {"segment": "lapsed", "days_since_last": 120.0, "frequency": 2, "customer_value": 30.0,
            "severity": np.nan, "unresolved": False, "days_to_resolve": np.nan, "past_contacts": 0,
            "offer_kind": "none"}  # fmt: skip
    base.update(columns)
    n = max((len(v) for v in base.values() if isinstance(v, list)), default=1)
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in base.items()})


def test_kinds_follow_what_the_decision_saw() -> None:
    frame = pd.DataFrame(
        {"segment": "lapsed", "days_since_last": [120.0, 500.0, 20.0, 60.0], "frequency": [2, 0, 3, 12],
         "customer_value": 30.0, "past_contacts": 0}
    )  # fmt: skip
    probs = pd.DataFrame(effects.kind_probabilities(frame), columns=effects.KINDS)
    assert probs.loc[0].idxmax() == "persuadable"  # lapsed four months
    assert probs.loc[1].idxmax() == "lost_cause"  # gone well over a year, never came back
    assert probs.loc[2].idxmax() == "sure_thing"  # bought three weeks ago
    assert probs.loc[3].idxmax() == "sleeping_dog"  # a frequent buyer only just overdue
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_the_true_effect_is_positive_for_persuadables_and_negative_for_sleeping_dogs() -> None:
    frame = _customers(days_since_last=[120.0, 60.0, 500.0], frequency=[2, 12, 0])
    effect = effects.true_effect(frame, np.array([0.05, 0.5, 0.0]))
    assert effect[0] > 0.1 and effect[1] < -0.2 and abs(effect[2]) < 0.02
    # an offer moves a persuadable more than the message alone
    offered = effects.true_effect(_customers(offer_kind="percent_discount"), np.array([0.05]))
    assert offered[0] > effect[0]
    # a failure that hurts (severe, unresolved) makes a persuadable of a customer otherwise gone
    gone = _customers(days_since_last=400.0)
    hurt = _customers(days_since_last=400.0, segment="aggrieved", severity=4.0, unresolved=True)
    assert effects.true_effect(hurt, np.zeros(1))[0] > effects.true_effect(gone, np.zeros(1))[0] + 0.05


def test_contact_moves_and_pushes_as_drawn() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    frame = _customers(days_since_last=[120.0] * n)
    persuadable = np.zeros(n, dtype=np.int64)
    dog = np.full(n, 3)
    returned = effects.contacted_outcome(rng, frame, persuadable, np.zeros(n, dtype=bool))
    assert returned.mean() == pytest.approx(effects.PERSUADED * effects.PLAIN_SHARE, abs=0.01)
    kept = effects.contacted_outcome(rng, frame, dog, np.ones(n, dtype=bool))
    assert kept.mean() == pytest.approx(1 - effects.PUSHED, abs=0.01)


def _window_orders(engine: Engine, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql(text("SELECT order_id, customer_id, ordered_at FROM orders"), conn)
    at = pd.to_datetime(frame["ordered_at"], utc=True, format="ISO8601")
    return frame.loc[(at > pd.Timestamp(start)) & (at <= pd.Timestamp(end))]


def test_a_past_run_is_replayed_on_the_generated_future_and_can_be_replayed_again(demo_engine: Engine) -> None:
    as_of = AS_OF - dt.timedelta(days=60)  # the warehouse holds what happened after: the untreated outcome
    end = as_of + dt.timedelta(days=30)
    config = CampaignConfig(campaign_id="replay", budget=2000.0, holdout_share=0.3, batch_size=2000)
    run = run_campaign(demo_engine, config, as_of=as_of, now=as_of)
    before = _window_orders(demo_engine, as_of, end)
    with demo_engine.connect() as conn:
        arms = pd.read_sql(text(f"SELECT customer_id, arm FROM wb_decisions WHERE run_id = {run.run_id} "
                                "AND arm IS NOT NULL"), conn).set_index("customer_id")["arm"]  # fmt: skip
    first = simulate_heterogeneous_response(demo_engine, run.run_id, window_days=30, seed=5)
    after = _window_orders(demo_engine, as_of, end)
    added = after.loc[after["order_id"].str.startswith(f"R{run.run_id}-")]
    removed = before.loc[~before["order_id"].isin(after["order_id"])]
    assert len(added) and len(removed), "some contacted customers were moved, some pushed away"
    assert (arms[added["customer_id"]] == "treatment").all() and (arms[removed["customer_id"]] == "treatment").all()
    held = arms.index[arms == "holdout"]
    assert before["customer_id"].isin(held).sum() == after["customer_id"].isin(held).sum(), "the holdout is untouched"
    assert sum(first.kinds.values()) == first.decided_treatment + first.decided_holdout

    with demo_engine.begin() as conn:
        tracked = track_run(conn, SRC, run.run_id, 30, now=end + dt.timedelta(days=1))
        sql = f"SELECT arm, SUM(CASE WHEN returned THEN 1 ELSE 0 END) FROM wb_returns WHERE run_id = {run.run_id}"
        returned = dict(conn.execute(text(sql + " GROUP BY arm")).all())
    assert tracked == len(arms)
    assert returned == {"treatment": first.returned_treatment, "holdout": first.returned_holdout}

    second = simulate_heterogeneous_response(demo_engine, run.run_id, window_days=30, seed=5)
    again = _window_orders(demo_engine, as_of, end)
    assert sorted(again["order_id"]) == sorted(after["order_id"]), "the same seed replays the same orders"
    assert (second.returned_treatment, second.true_ate) == (first.returned_treatment, first.true_ate)
    with demo_engine.connect() as conn:
        parked = conn.execute(select(withheld_orders.c.order_id)).scalars().all()
    assert sorted(parked) == sorted(removed["order_id"])


def test_the_run_at_the_end_of_history_draws_who_would_have_returned(demo_engine: Engine) -> None:
    config = CampaignConfig(campaign_id="today", budget=2000.0, holdout_share=0.3, batch_size=2000)
    run = run_campaign(demo_engine, config)
    summary = simulate_heterogeneous_response(demo_engine, run.run_id, window_days=30, seed=2)
    added = _window_orders(demo_engine, AS_OF, AS_OF + dt.timedelta(days=30))
    assert len(added) == summary.orders_inserted > 0
    assert added["order_id"].str.startswith(f"R{run.run_id}-").all()
    assert -0.1 < summary.true_ate < 0.3 and np.isnan(summary.true_lift)
