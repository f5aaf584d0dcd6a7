"""The run-wide step of a decision: the same customers select the same way, whatever parts they come in.

A partitioned run prices each partition apart, walks the budget once over everything gathered, and finishes
each partition apart. These tests decide a run whole and in parts, and in shuffled order, on candidates
with many exact ties in gain per cost, against a budget that cuts through the ties.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy
from winback.segments.budget_walk import WALK_COLUMNS, select_within_budget, spend_budget, walk_positions
from winback.segments.decision import decide, finish_decisions, price_candidates
from winback.segments.holdout import assign_holdout

POLICY = CompensationPolicy.default()
NAN = float("nan")
VARIANTS = {"lapsed": [{"name": "A", "offer_value": 10}, {"name": "B", "offer_value": 20}]}


def _candidates(n: int = 600) -> pd.DataFrame:
    """Lapsed and aggrieved customers on four customer values only: hundreds tie on gain per cost."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        aggrieved = i % 5 == 0
        rows.append(
            {
                "customer_id": f"c{rng.integers(0, 10**9):09d}",
                "segment": "aggrieved" if aggrieved else "lapsed",
                "failure_id": f"F{i}" if aggrieved else None,
                "failure_category": "late_delivery" if aggrieved else None,
                "severity": 3 if aggrieved else NAN,
                "unresolved": aggrieved,
                "order_amount": 60.0 if aggrieved else NAN,
                "p_active": 0.4,
                "customer_value": float(rng.choice([30.0, 80.0, 150.0, 400.0])),
                "mean_spend": 40.0,
                "do_not_contact": bool(i % 37 == 0),
                "fraud_flag": False,
                "channel": "sms" if i % 3 == 0 else "email",
                "channel_reason": None,
                "days_since_contact": NAN,
                "messages_30d": 0,
                "returned_since_failure": False,
                "lapsed_because": None if aggrieved else "overdue 2.0x own gap",
            }
        )
    return pd.DataFrame(rows).drop_duplicates("customer_id").reset_index(drop=True)


def _config(**kw: object) -> CampaignConfig:
    return CampaignConfig(**{"holdout_share": 0.2, "budget": 400.0, **kw})  # type: ignore[arg-type]


def _in_parts(candidates: pd.DataFrame, config: CampaignConfig, parts: int) -> pd.DataFrame:
    """What a partitioned run does: price each part, select once over all, finish each part."""
    ordered = candidates.sort_values("customer_id").reset_index(drop=True)
    chunks = [ordered.iloc[rows] for rows in np.array_split(np.arange(len(ordered)), parts)]
    priced = [price_candidates(chunk, config, POLICY) for chunk in chunks]
    walk = pd.concat([p.walk for p in priced], keys=range(parts))
    selected = select_within_budget(walk, "run-key", config.holdout_share, config.budget)
    finished = [finish_decisions(p, selected.xs(i), config, POLICY, "run-key", len(walk)) for i, p in enumerate(priced)]
    return pd.concat(finished, ignore_index=True)


def _by_customer(decisions: pd.DataFrame) -> pd.DataFrame:
    return decisions.sort_values("customer_id").reset_index(drop=True)


@pytest.mark.parametrize("variants", [{}, VARIANTS], ids=["plain", "variants"])
def test_a_run_decided_in_parts_decides_as_one(variants: dict) -> None:
    candidates, config = _candidates(), _config(variants=variants)
    whole = _by_customer(decide(candidates, config, POLICY, holdout_key="run-key"))
    assert set(whole["action"]) == {"contact", "holdout", "skip"}  # the budget cuts through the run
    assert (whole["reason"].str.contains("over budget|budget", regex=True)).any()
    for parts in (2, 3, 7):
        pd.testing.assert_frame_equal(_by_customer(_in_parts(candidates, config, parts)), whole)


def test_the_order_customers_come_in_changes_nothing() -> None:
    candidates, config = _candidates(), _config()
    first = _by_customer(decide(candidates, config, POLICY, holdout_key="run-key"))
    shuffled = candidates.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(_by_customer(decide(shuffled, config, POLICY, holdout_key="run-key")), first)
    reversed_ = candidates.iloc[::-1]
    pd.testing.assert_frame_equal(_by_customer(decide(reversed_, config, POLICY, holdout_key="run-key")), first)


def test_ties_in_gain_per_cost_are_walked_by_customer_id() -> None:
    walk = pd.DataFrame(
        {"customer_id": ["c3", "c1", "c2", "c0"], "segment": "lapsed", "ratio": [1.0, 1.0, 2.0, 1.0], "walk_cost": 5.0}
    )
    assert walk["customer_id"].iloc[walk_positions(walk)].tolist() == ["c2", "c0", "c1", "c3"]
    selected = select_within_budget(walk[WALK_COLUMNS], "k", 0.0, budget=10.0)
    assert selected.set_axis(walk["customer_id"])["within"].to_dict() == {
        "c3": False,
        "c1": False,
        "c2": True,
        "c0": True,
    }
    assert selected.set_axis(walk["customer_id"])["rank"].to_dict() == {"c3": 4.0, "c1": 3.0, "c2": 1.0, "c0": 2.0}


def test_equal_hashes_are_held_out_by_customer_id(monkeypatch: pytest.MonkeyPatch) -> None:
    import winback.segments.holdout as holdout

    monkeypatch.setattr(holdout, "hash_unit", lambda _key, ids: np.full(len(ids), 0.5))
    frame = pd.DataFrame({"customer_id": ["c9", "c2", "c5", "c1"], "segment": "lapsed"})
    held = assign_holdout("k", frame, 0.5)
    assert frame.loc[held, "customer_id"].tolist() == ["c2", "c1"]
    assert assign_holdout("k", frame.iloc[::-1], 0.5).reindex(frame.index).tolist() == held.tolist()


def test_held_out_customers_spend_nothing_but_are_walked_alike() -> None:
    chosen = spend_budget(np.array([6.0, 6.0, 6.0]), np.array([True, False, False]), budget=6.0)
    assert chosen.tolist() == [True, True, False]
