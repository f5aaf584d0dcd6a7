"""The report checks the uplift model on each closed run's own holdout: Qini, deciles, policy values, per run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert, update
from test_report_html import by_id, make_report, parse

from winback.reports.html import render_html_report, write_report_bundle
from winback.reports.uplift_evaluation import POLICIES, evaluate_uplift
from winback.warehouse.models import CampaignRun, Decision, Return

CONTACT_COST = {"email": 0.002, "sms": 0.05}


def _scored_run(engine: Engine, as_of: dt.datetime, *, n: int, informative: bool, seed: int) -> int:
    """A tracked run whose true uplift is known: half the customers are moved (+30 pts), half not at all.

    With ``informative`` the stored prediction follows the truth (with noise), and the predicted spend uplift
    is 30 (a returner's spend) times it; else the run has no predictions.
    """
    rng = np.random.default_rng(seed)
    moved = rng.random(n) < 0.5
    held = rng.random(n) < 0.3
    returned = rng.random(n) < 0.1 + np.where(held, 0.0, np.where(moved, 0.3, 0.0))
    predicted = np.where(moved, 0.25, 0.0) + rng.normal(0.0, 0.05, n) if informative else np.full(n, np.nan)
    value = rng.gamma(2.0, 50.0, n)  # the constant-lift policy ranks by value: unrelated to who is moved
    with engine.begin() as conn:
        run_id = insert_run(conn, "rep", as_of)
        lifts = {"none": 0.01, "percent_discount": 0.04}
        conn.execute(update(CampaignRun).where(CampaignRun.id == run_id).values(stats={"lift_used": lifts}))
        ids = [f"C{seed}-{i:05d}" for i in range(n)]
        conn.execute(
            insert(Decision),
            [
                {"run_id": run_id, "customer_id": c, "segment": "lapsed", "reason": "r", "decided_at": as_of,
                 "action": "holdout" if h else "contact", "arm": "holdout" if h else "treatment",
                 "offer_kind": "percent_discount", "offer_cost": 1.0, "customer_value": float(v), "channel": "email",
                 "predicted_uplift": None if np.isnan(p) else float(p),
                 "predicted_spend_uplift": None if np.isnan(p) else 30.0 * float(p)}
                for c, h, v, p in zip(ids, held, value, predicted, strict=True)
            ],
        )  # fmt: skip
        conn.execute(
            insert(Return),
            [
                {"run_id": run_id, "customer_id": c, "arm": "holdout" if h else "treatment", "returned": bool(y),
                 "first_return_at": as_of + dt.timedelta(days=2) if y else None, "orders": int(y),
                 "revenue": 30.0 * y, "redeemed": False, "window_days": 30,
                 "tracked_at": as_of + dt.timedelta(days=31)}
                for c, h, y in zip(ids, held, returned, strict=True)
            ],
        )  # fmt: skip
    return run_id


@pytest.fixture
def runs(engine: Engine) -> dict[str, int]:
    return {
        "unscored": _scored_run(engine, AS_OF - dt.timedelta(days=120), n=2000, informative=False, seed=1),
        "early": _scored_run(engine, AS_OF - dt.timedelta(days=80), n=2000, informative=True, seed=2),
        "reported": _scored_run(engine, AS_OF - dt.timedelta(days=40), n=3000, informative=True, seed=3),
    }


def test_the_holdout_shows_the_model_ranks_above_random(engine: Engine, runs: dict[str, int]) -> None:
    with engine.connect() as conn:
        stats = {"lift_used": {"none": 0.01, "percent_discount": 0.04}}
        ev = evaluate_uplift(conn, runs["reported"], "rep", stats, CONTACT_COST, AS_OF)
    assert ev.note is None
    assert ev.qini_low > 0 and ev.qini > ev.qini_low
    assert ev.n_treated + ev.n_holdout == 3000
    # the first decile (highest predicted) shows the 30-point effect; the last none
    first, last = ev.deciles.iloc[0], ev.deciles.iloc[-1]
    assert first["observed_uplift"] > 0.15 and first["observed_uplift_low"] > 0
    assert last["observed_uplift"] < 0.1
    # the Qini curve ends where random does, and rises above it on the way
    assert ev.curve["qini"].iloc[-1] == pytest.approx(ev.curve["random"].iloc[-1])
    assert (ev.curve["qini"] - ev.curve["random"]).max() > 0
    values = ev.policies.set_index(["share", "policy"])["per_1000"]
    assert set(ev.policies["policy"]) == set(POLICIES)
    assert values[(0.5, "uplift model")] > values[(0.5, "constant lift")] + 100  # ~300 per 1,000 against ~150
    assert values[(0.5, "uplift model")] > values[(0.5, "random")] + 100
    assert (ev.policies["per_1000_low"] < ev.policies["per_1000"]).all()
    # every closed run with predictions, each on its own holdout; the run without predictions is not listed
    assert ev.runs["run_id"].tolist() == [runs["early"], runs["reported"]]
    assert (ev.runs["qini_low"] > 0).all()
    # spend: the predicted spend uplift ranks the revenue in the window above random, and the model's
    # targeting brings more revenue per 1,000 contacted than the constant lift (≈ 30 × 300 against 30 × 150)
    assert ev.spend_qini_low > 0 and ev.spend_qini > ev.spend_qini_low
    revenue = ev.revenue_policies.set_index(["share", "policy"])["per_1000"]
    assert revenue[(0.5, "uplift model")] > revenue[(0.5, "constant lift")] + 2000
    assert revenue[(0.5, "uplift model")] > revenue[(0.5, "random")] + 2000


def test_a_run_decided_without_the_model_says_so(engine: Engine, runs: dict[str, int]) -> None:
    with engine.connect() as conn:
        stats = {"uplift": {"note": "fewer than 200 closed-window holdout customers of every offer kind"}}
        ev = evaluate_uplift(conn, runs["unscored"], "rep", stats, CONTACT_COST, AS_OF)
    assert ev.note == (
        "No uplift predictions for this run: fewer than 200 closed-window holdout customers of every offer kind."
    )
    assert ev.deciles.empty and len(ev.runs) == 2
    assert ev.revenue_policies.empty and np.isnan(ev.spend_qini)


def test_the_html_report_draws_the_qini_curve_and_the_tables(
    engine: Engine, runs: dict[str, int], tmp_path: Path
) -> None:
    with engine.connect() as conn:
        stats = {"lift_used": {"none": 0.01, "percent_discount": 0.04}}
        ev = evaluate_uplift(conn, runs["reported"], "rep", stats, CONTACT_COST, AS_OF)
    report = make_report(uplift=ev)
    root = parse(render_html_report(report)).root
    section = by_id(root, "uplift")
    qini = by_id(section, "uplift-qini")
    assert float(qini.attrs["data-value"]) == pytest.approx(ev.qini)
    assert "targeting by the predicted uplift found more" in qini.text
    chart = by_id(section, "chart-qini")
    series = {p.attrs["data-series"]: p.attrs["points"] for p in chart.find_all("polyline")}
    assert set(series) == {"model", "random"} and len(series["model"].split()) == len(ev.curve)
    for table_id in ("table-uplift-deciles", "table-uplift-policies", "table-uplift-runs"):
        assert by_id(section, table_id).find_all("td")
    policies = by_id(section, "table-uplift-policies")
    shown = [float(td.attrs["data-value"]) for td in policies.find_all("td") if td.attrs.get("data-col") == "per_1000"]
    np.testing.assert_allclose(shown, ev.policies["per_1000"])
    written = {p.name for p in write_report_bundle(report, tmp_path)}
    assert {"uplift_deciles.csv", "uplift_policies.json", "uplift_runs.csv", "uplift_qini_curve.csv"} <= written
    policies_json = json.loads((tmp_path / "uplift_policies.json").read_text())
    assert len(policies_json) == len(ev.policies)
    assert float(by_id(section, "uplift-spend-qini").attrs["data-value"]) == pytest.approx(ev.spend_qini)
    revenue = by_id(section, "table-uplift-revenue")
    shown = [float(td.attrs["data-value"]) for td in revenue.find_all("td") if td.attrs.get("data-col") == "per_1000"]
    np.testing.assert_allclose(shown, ev.revenue_policies["per_1000"])
    revenue_csv = pd.read_csv(tmp_path / "uplift_policy_revenue.csv")
    np.testing.assert_allclose(revenue_csv["per_1000"], ev.revenue_policies["per_1000"])
    # a report without the uplift section renders as before
    assert 'id="uplift"' not in render_html_report(make_report())


def test_the_note_replaces_the_section_when_there_are_no_predictions(engine: Engine, runs: dict[str, int]) -> None:
    with engine.connect() as conn:
        ev = evaluate_uplift(conn, runs["unscored"], "rep", {}, CONTACT_COST, AS_OF)
    root = parse(render_html_report(make_report(uplift=ev))).root
    assert by_id(root, "uplift-note").text.startswith("No uplift predictions for this run")
    assert not root.find_all(id="chart-qini")
    assert pd.notna(ev.runs["qini"]).all()
