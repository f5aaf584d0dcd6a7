"""The holdout: deterministic, order-independent, campaign-specific, stratified, and uniform."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from winback.segments.holdout import assign_holdout, hash_unit, held_out


def _customers(sizes: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{seg}-{i:04d}", seg) for seg, n in sizes.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["customer_id", "segment"])


def _held(campaign_id: str, frame: pd.DataFrame, share: float) -> set[str]:
    mask = assign_holdout(campaign_id, frame, share)
    return set(frame.loc[mask, "customer_id"])


def test_hash_unit_is_blake2b_of_campaign_and_customer() -> None:
    digest = hashlib.blake2b(b"spring:C42", digest_size=8).digest()
    expected = int.from_bytes(digest, "big") / 2**64
    assert hash_unit("spring", pd.Series(["C42"]))[0] == expected


def test_hash_unit_is_in_unit_interval_and_depends_on_both_ids() -> None:
    u = hash_unit("a", pd.Series(["x", "y"]))
    assert ((u >= 0) & (u < 1)).all()
    assert u[0] != u[1]
    assert hash_unit("b", pd.Series(["x"]))[0] != u[0]


def test_same_split_on_every_call() -> None:
    frame = _customers({"lapsed": 50, "aggrieved": 30})
    first = assign_holdout("camp-1", frame, 0.2)
    second = assign_holdout("camp-1", frame, 0.2)
    pd.testing.assert_series_equal(first, second)
    assert first.dtype == bool


def test_same_split_whatever_the_input_order() -> None:
    frame = _customers({"lapsed": 50, "aggrieved": 30})
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert not shuffled["customer_id"].equals(frame["customer_id"])
    assert _held("camp-1", frame, 0.2) == _held("camp-1", shuffled, 0.2)


def test_result_is_aligned_to_the_input_index() -> None:
    frame = _customers({"lapsed": 10}).set_axis(range(100, 110))
    mask = assign_holdout("camp-1", frame, 0.3)
    assert mask.index.tolist() == list(range(100, 110))
    assert int(mask.sum()) == 3


def test_different_campaigns_draw_different_holdouts() -> None:
    frame = _customers({"lapsed": 100})
    a, b = _held("spring-2026", frame, 0.5), _held("autumn-2026", frame, 0.5)
    assert len(a) == len(b) == 50
    assert a != b
    # independent draws of 50 out of 100 overlap in 25 on average (sd 2.5)
    assert 12 <= len(a & b) <= 38


@pytest.mark.parametrize(
    ("sizes", "share", "expected"),
    [
        (
            {"lapsed": 7, "aggrieved": 13, "vip": 40, "tiny": 1},
            0.3,
            {"lapsed": 2, "aggrieved": 4, "vip": 12, "tiny": 0},
        ),
        ({"lapsed": 20, "aggrieved": 3}, 0.1, {"lapsed": 2, "aggrieved": 0}),
        ({"lapsed": 9, "aggrieved": 11}, 0.9, {"lapsed": 8, "aggrieved": 10}),
        ({"lapsed": 1000}, 0.05, {"lapsed": 50}),
    ],
    ids=["mixed-sizes-30pct", "small-segment-10pct", "90pct", "large-5pct"],
)
def test_stratified_exact_count_per_segment(sizes: dict[str, int], share: float, expected: dict[str, int]) -> None:
    frame = _customers(sizes)
    mask = assign_holdout("camp-1", frame, share)
    counts = frame.loc[mask].groupby("segment").size().reindex(list(sizes), fill_value=0).to_dict()
    assert counts == expected


def test_holdout_is_the_lowest_hashes_within_each_segment() -> None:
    frame = _customers({"lapsed": 20, "aggrieved": 10})
    u = hash_unit("camp-1", frame["customer_id"])
    mask = assign_holdout("camp-1", frame, 0.2)
    for seg, n_held in (("lapsed", 4), ("aggrieved", 2)):
        in_seg = (frame["segment"] == seg).to_numpy()
        lowest = set(frame.loc[in_seg, "customer_id"].to_numpy()[np.argsort(u[in_seg])[:n_held]])
        assert set(frame.loc[mask & in_seg, "customer_id"]) == lowest


def test_another_strata_column() -> None:
    frame = _customers({"lapsed": 10, "aggrieved": 10})
    frame["channel"] = ["email"] * 15 + ["sms"] * 5
    mask = assign_holdout("camp-1", frame, 0.2, strata="channel")
    assert frame.loc[mask].groupby("channel").size().to_dict() == {"email": 3, "sms": 1}


def test_share_zero_holds_out_nobody() -> None:
    frame = _customers({"lapsed": 30, "aggrieved": 30})
    assert not assign_holdout("camp-1", frame, 0.0).any()


def test_empty_frame_gives_empty_mask() -> None:
    mask = assign_holdout("camp-1", pd.DataFrame(columns=["customer_id", "segment"]), 0.1)
    assert mask.empty
    assert mask.dtype == bool


def test_hash_is_uniform_over_many_ids() -> None:
    u = hash_unit("camp-1", pd.Series([f"C{i:06d}" for i in range(20_000)]))
    counts, _ = np.histogram(u, bins=20, range=(0.0, 1.0))
    chi2 = stats.chisquare(counts)
    assert chi2.pvalue > 0.001
    assert stats.kstest(u, "uniform").pvalue > 0.001


def test_every_customer_is_held_out_about_share_of_the_time_across_campaigns() -> None:
    frame = _customers({"lapsed": 20})
    n_campaigns = 400
    held = pd.Series(0, index=frame["customer_id"])
    for k in range(n_campaigns):
        held[list(_held(f"camp-{k}", frame, 0.25))] += 1
    # 5 of 20 per campaign: each customer expected 100 times out of 400 (binomial sd ~ 8.7)
    assert held.sum() == 5 * n_campaigns
    assert held.between(60, 140).all(), held.sort_values().to_dict()


def test_one_customer_decided_alone_is_held_out_when_their_hash_is_below_the_share() -> None:
    ids = [f"C{i:05d}" for i in range(4_000)]
    u = hash_unit("crm-recovery", pd.Series(ids))
    held = [held_out("crm-recovery", cid, 0.1) for cid in ids]
    assert held == (u < 0.1).tolist()  # the same draw a campaign's split ranks by
    assert 0.08 < np.mean(held) < 0.12
    assert not any(held_out("crm-recovery", cid, 0.0) for cid in ids[:200])
