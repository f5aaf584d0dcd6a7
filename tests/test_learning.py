"""Lift priors learn from past campaigns: pure update rule, and the campaign using it on a second run."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import AS_OF
from sqlalchemy import Engine, select

from winback.app.demo_data import simulate_campaign_response
from winback.config import CampaignConfig
from winback.segments.learning import updated_lifts
from winback.warehouse.models import CampaignRun
from winback.warehouse.returns import measured_lift_by_offer_kind, track_run
from winback.warehouse.source import SourceMapping, SourceTables

PRIOR = {"none": 0.01, "percent_discount": 0.04}


def measured(kind: str, nt: int, rt: int, nh: int, rh: int) -> pd.DataFrame:
    return pd.DataFrame([{"offer_kind": kind, "n_treated": nt, "returned_treated": rt, "n_holdout": nh,
                          "returned_holdout": rh}])  # fmt: skip


def test_no_evidence_keeps_the_prior() -> None:
    assert updated_lifts(PRIOR, measured("percent_discount", 0, 0, 0, 0)) == PRIOR
    assert updated_lifts(PRIOR, pd.DataFrame(columns=measured("x", 1, 1, 1, 1).columns)) == PRIOR


def test_update_is_the_precision_weighted_mean() -> None:
    # observed lift 0.20 - 0.10 = 0.10; n_eff = 2 / (1/1000 + 1/1000) = 1000; prior weight 2000
    out = updated_lifts(PRIOR, measured("percent_discount", 1000, 200, 1000, 100), prior_weight=2000)
    assert out["percent_discount"] == pytest.approx((0.04 * 2000 + 0.10 * 1000) / 3000)
    assert out["none"] == PRIOR["none"]


def test_large_evidence_dominates_and_small_barely_moves() -> None:
    big = updated_lifts(PRIOR, measured("percent_discount", 200_000, 20_000, 200_000, 18_000))
    small = updated_lifts(PRIOR, measured("percent_discount", 20, 10, 20, 0))
    assert big["percent_discount"] == pytest.approx(0.01, abs=0.001)
    assert abs(small["percent_discount"] - 0.04) < 0.01


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="n_holdout"):
        updated_lifts(PRIOR, pd.DataFrame({"offer_kind": ["none"], "n_treated": [1], "returned_treated": [0]}))


def test_second_run_decides_with_the_first_runs_measured_lift(demo_engine: Engine) -> None:
    from test_campaign_path import run_campaign

    src = SourceTables(SourceMapping())
    config = CampaignConfig(campaign_id="learn", budget=2000.0, holdout_share=0.3, contact={"cooldown_days": 0})
    first = run_campaign(demo_engine, config)
    simulate_campaign_response(demo_engine, first.run_id, window_days=30, true_lift=0.3, seed=2)
    with demo_engine.begin() as conn:
        track_run(conn, src, first.run_id, 30, now=AS_OF + dt.timedelta(days=31))  # tracked once the window closed
        evidence = measured_lift_by_offer_kind(conn, "learn", AS_OF + dt.timedelta(days=35))
    assert evidence["n_treated"].sum() > 0 and evidence["n_holdout"].sum() > 0

    later = AS_OF + dt.timedelta(days=35)
    second = run_campaign(demo_engine, config, now=later, as_of=later)
    with demo_engine.connect() as conn:
        stats = conn.execute(select(CampaignRun.stats).where(CampaignRun.id == second.run_id)).scalar_one()
    expected = updated_lifts(config.economics.lift_prior, evidence)
    assert stats["lift_used"] == {k: round(v, 4) for k, v in expected.items()}
    assert stats["lift_used"] != {k: round(v, 4) for k, v in config.economics.lift_prior.items()}
