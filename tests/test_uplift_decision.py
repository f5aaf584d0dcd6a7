"""The decision on each customer's predicted uplift: gains per option, sleeping dogs skipped, the fallback rule."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert
from test_segments_decision import POLICY, _aggrieved, _cand, _config, _row

from winback.segments.decision import decide
from winback.segments.uplift.decision_model import DecisionUplift, train_decision_uplift
from winback.warehouse.json_rows import json_objects
from winback.warehouse.models import Decision, Return


class _Model:
    """An UpliftModel's shape for stubs: its 'matrix' is the frame itself, and it is its own learner."""

    @property
    def learner(self) -> _Model:
        return self

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    def same_layout(self, other: object) -> bool:
        return False


class _Stub(_Model):
    """A model whose uplift is known: −5 pts for customers contacted often, else 8 pts with an offer, 3 without."""

    encoder = SimpleNamespace(features=("past_contacts", "offer_kind"))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        often = frame["past_contacts"].to_numpy(dtype=float) >= 3
        offered = (frame["offer_kind"] != "none").to_numpy()
        return np.where(often, -0.05, np.where(offered, 0.08, 0.03))


def _uplift(*trusted: str) -> DecisionUplift:
    return DecisionUplift(_Stub(), frozenset(trusted), {"used": True})  # type: ignore[arg-type]


def _decide_with(uplift: DecisionUplift | None, *rows: dict[str, object]) -> pd.DataFrame:
    return decide(pd.DataFrame(list(rows)), _config(), POLICY, uplift)


def test_the_gain_uses_the_predicted_uplift_and_the_reason_says_so() -> None:
    out = _decide_with(_uplift("percent_discount", "none"), _cand("c1", past_contacts=0))
    row = _row(out, "c1")
    # 0.08 × 100 − 2.10 − 0.002 against the message alone 0.03 × 100 − 0.002: the offer pays more
    assert row["action"] == "contact" and row["offer_kind"] == "percent_discount"
    assert row["expected_gain"] == pytest.approx(5.9)
    assert "(lift 8.0 pts, uplift model)" in row["reason"]
    assert row["predicted_uplift"] == pytest.approx(0.08)


class _SpendStub(_Model):
    """Incremental spend in the window: 20 with an offer, 5 for the message alone."""

    encoder = SimpleNamespace(features=("offer_kind",))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.where((frame["offer_kind"] != "none").to_numpy(), 20.0, 5.0)


def test_the_predicted_spend_uplift_counts_in_money_and_the_value_for_the_rest_of_the_horizon() -> None:
    uplift = DecisionUplift(_Stub(), frozenset({"percent_discount", "none"}), {"used": True},  # type: ignore[arg-type]
                            spend_model=_SpendStub())  # type: ignore[arg-type]  # fmt: skip
    row = _row(_decide_with(uplift, _cand("c1", past_contacts=0)), "c1")
    after_window = 1 - 30 / 365  # the CLV horizon after the 30-day attribution window
    # 0.08 × 100 × h + 20 × 0.3 (margin) − 2.10 − 0.002 against the message alone 0.03 × 100 × h + 5 × 0.3 − 0.002
    assert row["offer_kind"] == "percent_discount"
    assert row["expected_gain"] == pytest.approx(round(8 * after_window + 6 - 2.10 - 0.002, 2))
    assert row["predicted_spend_uplift"] == pytest.approx(20.0)
    # for a kind the model does not decide for, neither its spend nor the horizon factor counts
    fallback = _row(_decide_with(DecisionUplift(_Stub(), frozenset(), {"used": True},  # type: ignore[arg-type]
                                                spend_model=_SpendStub()),  # type: ignore[arg-type]
                                 _cand("c1", past_contacts=0)), "c1")  # fmt: skip
    assert fallback["expected_gain"] == pytest.approx(round(0.04 * 100 - 2.10 - 0.002, 2))
    assert fallback["predicted_spend_uplift"] == pytest.approx(20.0)  # stored all the same


def test_a_customer_predicted_to_be_pushed_away_is_not_contacted() -> None:
    out = _decide_with(_uplift("percent_discount", "none"), _cand("dog", past_contacts=4), _cand("ok", past_contacts=0))
    dog = _row(out, "dog")
    assert dog["action"] == "skip"
    assert dog["reason"].startswith("skipped: a message is predicted to lower their chance of returning;")
    assert "(lift -5.0 pts, uplift model)" in dog["reason"]
    assert dog["predicted_uplift"] == pytest.approx(-0.05)
    assert _row(out, "ok")["action"] == "contact"


def test_the_same_customer_is_contacted_on_the_per_offer_kind_lift() -> None:
    dog = _cand("dog", past_contacts=4)
    without = _row(_decide_with(None, dog), "dog")
    assert without["action"] == "contact"
    assert "(lift 4.0 pts, per offer kind)" in without["reason"]
    assert np.isnan(without["predicted_uplift"])


def test_an_aggrieved_customer_predicted_to_be_pushed_away_still_gets_the_apology_without_the_offer() -> None:
    out = _decide_with(_uplift("store_credit", "none"), _aggrieved("a1", past_contacts=5))
    row = _row(out, "a1")
    assert row["action"] == "contact"
    assert row["offer_kind"] == "none" and row["offer_cost"] == 0.0
    assert row["reason"].startswith("contact: apology owed (not for the value);")


def test_an_offer_kind_without_enough_evidence_falls_back_to_its_lift() -> None:
    # the model decides for the message alone only: a high-value customer's store credit keeps its per-offer-kind
    # lift (6 pts), and 0.06 × 300 − 0.35 × 15 − 0.002 beats the message alone at the model's 3 pts (0.03 × 300)
    out = _decide_with(_uplift("none"), _cand("c1", past_contacts=0, customer_value=300.0))
    row = _row(out, "c1")
    assert row["offer_kind"] == "store_credit"
    assert "(lift 6.0 pts, per offer kind)" in row["reason"]
    assert row["predicted_uplift"] == pytest.approx(0.08)  # the model's view is stored all the same


# --------------------------------------------------------------------------- training from winback's own state


def _closed_runs(engine: Engine, *, runs: int, customers: int, holdout_share: float, seed: int = 0) -> None:
    """Closed, tracked runs whose truth is known: +25 pts for customers lapsed 60-300 days, −20 pts for those
    contacted three times or more (the two add up); a discount for most, the message alone for some."""
    rng = np.random.default_rng(seed)
    with engine.begin() as conn:
        for r in range(runs):
            as_of = AS_OF - dt.timedelta(days=200 - 40 * r)
            run_id = insert_run(conn, "learn", as_of)
            ids = [f"R{r}C{i:05d}" for i in range(customers)]
            since = rng.gamma(2.0, 100.0, customers) + 20
            contacts = rng.poisson(1.5, customers)
            held = rng.random(customers) < holdout_share
            kind = np.where(rng.random(customers) < 0.8, "percent_discount", "none")
            truth = np.where((since > 60) & (since < 300), 0.25, 0.0) - np.where(contacts >= 3, 0.2, 0.0)
            base = np.clip(0.3 - since / 2000, 0.05, None)
            returned = rng.random(customers) < np.clip(base + np.where(held, 0.0, truth), 0, 1)
            features = pd.DataFrame({"days_since_last": since, "frequency": rng.poisson(3.0, customers),
                                     "past_contacts": contacts, "locale": "de_DE"})  # fmt: skip
            texts = json_objects(features)
            conn.execute(
                insert(Decision),
                [
                    {"run_id": run_id, "customer_id": c, "segment": "lapsed", "reason": "r", "decided_at": as_of,
                     "action": "holdout" if h else "contact", "arm": "holdout" if h else "treatment",
                     "offer_kind": k, "offer_value": 10.0 if k != "none" else 0.0, "customer_value": 50.0,
                     "p_active": 0.3, "channel": "email", "features": t}
                    for c, h, k, t in zip(ids, held, kind, texts, strict=True)
                ],
            )  # fmt: skip
            conn.execute(
                insert(Return),
                [
                    {"run_id": run_id, "customer_id": c, "arm": "holdout" if h else "treatment", "returned": bool(y),
                     "first_return_at": as_of + dt.timedelta(days=3) if y else None, "orders": int(y),
                     "revenue": 40.0 * y, "redeemed": False, "window_days": 30,
                     "tracked_at": as_of + dt.timedelta(days=31)}
                    for c, h, y in zip(ids, held, returned, strict=True)
                ],
            )  # fmt: skip


def test_no_closed_run_means_no_model(engine: Engine) -> None:
    with engine.connect() as conn:
        uplift = train_decision_uplift(conn, "learn", AS_OF)
    assert uplift.model is None and not uplift.summary["used"]
    assert "no closed" in uplift.summary["note"]


def test_too_few_holdout_customers_per_offer_kind_keeps_the_per_offer_kind_lift(engine: Engine) -> None:
    _closed_runs(engine, runs=2, customers=600, holdout_share=0.1)  # about 100 held out of each kind at most
    with engine.connect() as conn:
        uplift = train_decision_uplift(conn, "learn", AS_OF)
    assert uplift.model is None
    assert uplift.summary["note"].startswith("fewer than 200 closed-window holdout customers")
    assert sum(uplift.summary["holdout_by_kind"].values()) < 400


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_model_learns_who_responds_and_decides_for_the_kinds_with_evidence(engine: Engine) -> None:
    _closed_runs(engine, runs=4, customers=3000, holdout_share=0.3)
    with engine.connect() as conn:
        uplift = train_decision_uplift(conn, "learn", AS_OF)
        too_early = train_decision_uplift(conn, "learn", AS_OF - dt.timedelta(days=120))
    assert uplift.model is not None
    assert uplift.summary["runs"] == 4 and uplift.summary["validation_qini"] > 0
    assert uplift.trusted == {"percent_discount", "none"}  # both kinds have ≥ 200 held out and treated
    probe = pd.DataFrame(
        {"days_since_last": [120.0, 600.0, 120.0], "frequency": [3, 3, 3], "past_contacts": [0, 0, 5],
         "locale": "de_DE", "segment": "lapsed", "offer_kind": "percent_discount", "channel": "email"}
    )  # fmt: skip
    persuadable, lost, dog = uplift.predict(probe)
    assert persuadable > lost + 0.1 and dog < persuadable - 0.1
    # a returner spends 40 in the window: the spend model learns 40 × the return's uplift, roughly
    assert uplift.spend_model is not None and uplift.summary["spend_used"]
    spend = uplift.predict_both(probe)[1]
    assert spend[0] > spend[1] + 2 and spend[2] < spend[0] - 2
    # a run decides only on what had closed by its own as-of: two runs then, not four
    assert too_early.summary["runs"] == 2
    # the same closed runs and settings again (a re-run, a dry run): the fit is reused, not repeated
    with engine.connect() as conn:
        assert train_decision_uplift(conn, "learn", AS_OF) is uplift
        assert train_decision_uplift(conn, "learn", AS_OF, seed=1) is not uplift


# --------------------------------------------------------------------------- winback explain


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_explain_shows_the_predicted_uplift_and_its_main_drivers(engine: Engine) -> None:
    from sqlalchemy import update

    from winback.segments.uplift.explain import uplift_lines
    from winback.warehouse.models import CampaignRun

    _closed_runs(engine, runs=4, customers=3000, holdout_share=0.3)
    with engine.begin() as conn:
        uplift = train_decision_uplift(conn, "learn", AS_OF)
        run_id = insert_run(conn, "learn", AS_OF)
        conn.execute(update(CampaignRun).where(CampaignRun.id == run_id).values(stats={"uplift": uplift.summary}))
        known = pd.DataFrame({"days_since_last": [120.0, 120.0], "frequency": [3, 3], "past_contacts": [0, 6],
                              "locale": "de_DE"})  # fmt: skip
        decided = known.assign(segment="lapsed", offer_kind="percent_discount", channel="email")
        predicted, spend = uplift.predict_both(decided)
        conn.execute(
            insert(Decision),
            [
                {"run_id": run_id, "customer_id": c, "segment": "lapsed", "action": "contact", "arm": "treatment",
                 "reason": "contact: … (lift 9.9 pts, uplift model); 10% off by email", "decided_at": AS_OF,
                 "offer_kind": "percent_discount", "channel": "email", "predicted_uplift": float(p), "features": t,
                 "predicted_spend_uplift": float(m)}
                for c, p, m, t in zip(["keen", "dog"], predicted, spend, json_objects(known), strict=True)
            ],
        )  # fmt: skip
        run_without = insert_run(conn, "other", AS_OF)
        conn.execute(insert(Decision).values(run_id=run_without, customer_id="x", segment="lapsed", action="skip",
                                             reason="r", decided_at=AS_OF))  # fmt: skip
    with engine.connect() as conn:
        keen, dog = uplift_lines(conn, run_id, "keen"), uplift_lines(conn, run_id, "dog")
        none = uplift_lines(conn, run_without, "x")
    assert keen[0].startswith(f"predicted uplift {predicted[0] * 100:+.1f} pp") and "decided with it" in keen[0]
    # pushed away by being contacted often
    assert dog[1].startswith("main drivers: past campaign contacts 6 (-"), dog[1]
    assert "past campaign contacts" not in keen[1].split(";")[0] or "(+" in keen[1].split(";")[0]
    assert keen[-1].startswith(f"predicted spend uplift {spend[0]:+,.2f} in the attribution window"), keen[-1]
    assert none == ["uplift: not predicted for this decision (the run decided without an uplift model); "
                    "it used the per-offer-kind lift"]  # fmt: skip


def test_each_run_draws_its_own_holdout_and_a_rerun_the_same() -> None:
    from winback.segments.holdout import run_key

    rows = [_cand(f"c{i:04d}") for i in range(2000)]
    config = _config(holdout_share=0.2)
    frame = pd.DataFrame(rows)

    def held(as_of: dt.datetime) -> set[str]:
        out = decide(frame, config, POLICY, None, run_key(config.campaign_id, as_of))
        return set(out.loc[out["action"] == "holdout", "customer_id"])

    first, again, later = held(AS_OF), held(AS_OF), held(AS_OF + dt.timedelta(days=35))
    assert first == again and len(first) == 400
    # independent draws: about 0.2 × 400 = 80 in common, not the same 400 customers held out every month
    assert 40 < len(first & later) < 130
