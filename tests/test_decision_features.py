"""Each decision stores what it knew (its features), counted only from before its as-of: nothing leaks back."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert, select
from test_campaign_path import SRC, run_campaign

from winback.app.demo_data import simulate_campaign_response
from winback.config import CampaignConfig
from winback.segments.decision_features import STORED, country_of, features_frame, model_frame
from winback.warehouse.json_rows import json_objects
from winback.warehouse.models import Decision, Return
from winback.warehouse.past_outcomes import past_outcomes
from winback.warehouse.returns import track_run


def test_json_objects_round_trip_with_nulls_booleans_integers_and_text() -> None:
    frame = pd.DataFrame(
        {
            "days": [1.23456789, np.nan, np.inf, 4.0],
            "n": np.array([1, 2, 3, 4], dtype="int64"),
            "flag": [True, False, True, False],
            "locale": ["de_DE", None, 'quo"te', "x,y"],
            "odd % key": [1.0, 2.0, 3.0, 4.0],
        }
    )
    rows = [json.loads(text) for text in json_objects(frame)]
    assert rows[0] == {"days": 1.2346, "n": 1, "flag": True, "locale": "de_DE", "odd % key": 1.0}
    assert rows[1]["days"] is None and rows[1]["locale"] is None
    assert rows[2]["days"] is None  # an infinity is no number: null, not invalid JSON
    assert rows[2]["locale"] == 'quo"te' and rows[3]["locale"] == "x,y"


def test_json_objects_leave_out_columns_a_group_has_no_value_for() -> None:
    frame = pd.DataFrame({"recency": [10.0, 20.0, 30.0], "severity": [np.nan, 3.0, np.nan]})
    groups = pd.Series(["lapsed", "aggrieved", "lapsed"])
    rows = [json.loads(text) for text in json_objects(frame, groups)]
    assert rows == [{"recency": 10.0}, {"recency": 20.0, "severity": 3.0}, {"recency": 30.0}]


def test_stored_features_read_back_as_a_frame_in_order() -> None:
    frame = pd.DataFrame({"frequency": [3, 0], "locale": ["fr_FR", "en_GB"], "unresolved": [False, True]})
    back = features_frame([*json_objects(frame), None])
    assert back["frequency"].tolist()[:2] == [3, 0]
    assert back["locale"].tolist()[:2] == ["fr_FR", "en_GB"]
    assert back.iloc[2].isna().all()  # a decision stored without features
    assert country_of(pd.Series(["de_DE", "en-gb", None, "xx"])).tolist()[:2] == ["DE", "GB"]
    assert model_frame(back.assign(segment="lapsed"))["country"].tolist()[:2] == ["FR", "GB"]


def test_past_outcomes_count_only_what_happened_before_the_as_of(engine: Engine) -> None:
    early, late = AS_OF - dt.timedelta(days=40), AS_OF + dt.timedelta(days=5)
    now = AS_OF
    with engine.begin() as conn:
        first = insert_run(conn, "c", early)
        later = insert_run(conn, "c", late)
        base = {"segment": "lapsed", "reason": "r", "decided_at": now}
        conn.execute(
            insert(Decision),
            [
                {**base, "run_id": first, "customer_id": "A", "action": "contact", "arm": "treatment"},
                {**base, "run_id": first, "customer_id": "B", "action": "holdout", "arm": "holdout"},
                {**base, "run_id": later, "customer_id": "A", "action": "contact", "arm": "treatment"},
            ],
        )
        ret = {"run_id": first, "arm": "treatment", "orders": 1, "revenue": 10, "redeemed": False,
               "window_days": 60, "tracked_at": late}  # fmt: skip
        conn.execute(
            insert(Return),
            [
                {**ret, "customer_id": "A", "returned": True, "first_return_at": AS_OF - dt.timedelta(days=3)},
                # B came back in the window of the first run, but after AS_OF: not known at AS_OF
                {**ret, "customer_id": "B", "arm": "holdout", "returned": True, "first_return_at": AS_OF},
            ],
        )
        past = past_outcomes(conn, AS_OF).set_index("customer_id")
        later_view = past_outcomes(conn, late + dt.timedelta(days=1), exclude_run_id=later).set_index("customer_id")
    assert past.loc["A"].tolist() == [1, 1]  # the later run's contact is in the future
    assert "B" not in past.index  # held out (no contact) and returned only at AS_OF itself
    assert later_view.loc["A", "past_contacts"] == 1  # the deciding run's own contact is excluded
    assert later_view.loc["B", "past_returns"] == 1


def _features(engine: Engine, run_id: int) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Decision.customer_id, Decision.segment, Decision.action, Decision.arm, Decision.features).where(
                Decision.run_id == run_id
            )
        ).all()
    frame = pd.DataFrame(rows, columns=["customer_id", "segment", "action", "arm", "features"])
    return frame.join(pd.DataFrame([f or {} for f in frame["features"]]))


def test_every_decision_in_an_arm_stores_its_features_and_a_later_run_counts_only_the_past(
    demo_engine: Engine,
) -> None:
    config = CampaignConfig(campaign_id="features", budget=2000.0, holdout_share=0.2, batch_size=700)
    first = run_campaign(demo_engine, config)
    everyone = _features(demo_engine, first.run_id)
    skipped = everyone[everyone.arm.isna()]
    assert len(skipped) and (skipped.action == "skip").all()
    assert skipped["features"].isna().all(), "a skip is in no arm: nothing learns from its features"
    before = everyone[everyone.arm.notna()].reset_index(drop=True)
    assert set(before.arm) == {"treatment", "holdout"}
    assert before["features"].notna().all()
    lapsed, aggrieved = before[before.segment == "lapsed"], before[before.segment == "aggrieved"]
    assert lapsed["days_since_failure"].isna().all() and aggrieved["days_since_failure"].notna().all()
    assert (before["past_contacts"] == 0).all() and (before["past_returns"] == 0).all()
    assert set(before.columns) >= {"frequency", "days_since_last", "locale", "messages_30d"}
    assert set(before.columns) - {"customer_id", "segment", "action", "arm", "features"} <= set(STORED)

    simulate_campaign_response(demo_engine, first.run_id, window_days=30, true_lift=0.2, seed=4)
    with demo_engine.begin() as conn:
        track_run(conn, SRC, first.run_id, 30, now=AS_OF + dt.timedelta(days=31))
        returns = pd.read_sql(select(Return.customer_id, Return.first_return_at).where(Return.returned), conn)
    second_as_of = AS_OF + dt.timedelta(days=20)
    second = run_campaign(demo_engine, config, now=second_as_of, as_of=second_as_of)
    after = _features(demo_engine, second.run_id).set_index("customer_id")
    after = after[after.arm.notna()]
    contacted = set(before.loc[before.action == "contact", "customer_id"]) & set(after.index)
    assert contacted, "customers contacted in the first run are considered again"
    assert (after.loc[sorted(contacted), "past_contacts"] == 1).all()
    returned_at = pd.to_datetime(returns.set_index("customer_id")["first_return_at"], utc=True)
    known = returned_at[returned_at < pd.Timestamp(second_as_of)].index.intersection(after.index)
    not_yet = returned_at[returned_at >= pd.Timestamp(second_as_of)].index.intersection(after.index)
    assert len(known) and len(not_yet), "returns fall on both sides of the second as-of"
    assert (after.loc[known, "past_returns"] == 1).all()
    assert (after.loc[not_yet, "past_returns"] == 0).all(), "a return after the decision must not leak into it"
    # the first run's features are what it knew then: the later run rewrites nothing
    again = _features(demo_engine, first.run_id)
    again = again[again.arm.notna()].reset_index(drop=True)
    pd.testing.assert_series_equal(again["past_contacts"], before["past_contacts"])


@pytest.mark.parametrize("column", ["frequency", "days_since_last"])
def test_stored_order_history_is_the_one_at_the_as_of(demo_engine: Engine, column: str) -> None:
    config = CampaignConfig(campaign_id="asof", budget=500.0, batch_size=2000)
    as_of = AS_OF - dt.timedelta(days=60)  # the warehouse holds orders after this: they must not count
    run = run_campaign(demo_engine, config, as_of=as_of, now=as_of)
    stored = _features(demo_engine, run.run_id).set_index("customer_id")
    from winback.stages import reads

    summary = reads.summarise_batch(demo_engine, SRC, as_of, (None, None)).set_index("customer_id")
    ids = stored.index[stored[column].notna()]
    assert len(ids) > 50
    np.testing.assert_allclose(stored.loc[ids, column], summary.loc[ids, column], atol=1e-3)
