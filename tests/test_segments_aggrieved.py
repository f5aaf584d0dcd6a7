"""Aggrieved segment: the worst failure per customer, the severity filter and the grievance weighting."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import AS_OF

from winback.config import AggrievedRule, CampaignConfig
from winback.segments.aggrieved import FAILURE_COLUMNS, aggrieved_segment
from winback.segments.candidates import build_candidates
from winback.warehouse.timeutil import to_epoch_days

OUT_COLUMNS = [
    "customer_id", "failure_id", "order_id", "failure_category", "severity", "occurred_at",
    "resolved_at", "unresolved", "description", "order_amount", "grievance", "failures",
]  # fmt: skip


def _days_ago(days: float) -> pd.Timestamp:
    return pd.Timestamp(AS_OF - dt.timedelta(days=days))


def _failures(rows: list[tuple]) -> pd.DataFrame:
    """rows: (failure_id, customer_id, category, severity, occurred days ago, resolved days after or None)."""
    records = []
    for fid, cid, category, severity, ago, resolved_after in rows:
        occurred = _days_ago(ago)
        resolved = occurred + pd.Timedelta(days=resolved_after) if resolved_after is not None else None
        records.append((fid, cid, f"O-{fid}", category, severity, occurred, resolved))
    frame = pd.DataFrame.from_records(records, columns=list(FAILURE_COLUMNS))
    frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True)
    return frame


def _by_customer(out: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["customer_id"]: row for _, row in out.iterrows()}


def test_unresolved_beats_a_more_severe_resolved_failure() -> None:
    f = _failures([("f1", "c1", "damaged_item", 5, 10, 1), ("f2", "c1", "late_delivery", 2, 20, None)])
    row = aggrieved_segment(f, AggrievedRule()).iloc[0]
    assert row["failure_id"] == "f2"
    assert row["failure_category"] == "late_delivery"
    assert bool(row["unresolved"]) is True
    assert pd.isna(row["resolved_at"])
    # 5 x 1 (resolved within a day) + 2 x 1.5 (unresolved)
    assert row["grievance"] == pytest.approx(8.0)
    assert row["failures"] == 2


def test_between_resolved_failures_the_most_severe_wins() -> None:
    f = _failures([("f3", "c2", "late_delivery", 3, 30, 1), ("f4", "c2", "wrong_item", 4, 40, 1)])
    row = aggrieved_segment(f, AggrievedRule()).iloc[0]
    assert row["failure_id"] == "f4"
    assert row["order_id"] == "O-f4"
    assert row["grievance"] == pytest.approx(7.0)


def test_equal_severity_the_most_recent_wins() -> None:
    f = _failures([("f5", "c3", "late_delivery", 3, 30, 1), ("f6", "c3", "billing_error", 3, 5, 1)])
    row = aggrieved_segment(f, AggrievedRule()).iloc[0]
    assert row["failure_id"] == "f6"
    assert row["occurred_at"] == _days_ago(5)


def test_between_unresolved_failures_severity_then_recency() -> None:
    f = _failures(
        [
            ("a", "c", "late_delivery", 3, 1, None),
            ("b", "c", "outage", 4, 50, None),
            ("c", "c", "outage", 4, 20, None),
        ]
    )
    row = aggrieved_segment(f, AggrievedRule()).iloc[0]
    assert row["failure_id"] == "c"
    assert row["grievance"] == pytest.approx(1.5 * (3 + 4 + 4))
    assert row["failures"] == 3


def test_one_row_per_customer_across_customers() -> None:
    f = _failures(
        [
            ("f1", "c1", "damaged_item", 5, 10, 1),
            ("f2", "c1", "late_delivery", 2, 20, None),
            ("f3", "c2", "late_delivery", 3, 30, 1),
            ("f4", "c2", "wrong_item", 4, 40, 1),
        ]
    )
    out = aggrieved_segment(f, AggrievedRule())
    assert list(out.columns) == OUT_COLUMNS
    assert sorted(out["customer_id"]) == ["c1", "c2"]
    rows = _by_customer(out)
    assert rows["c1"]["failure_id"] == "f2"
    assert rows["c2"]["failure_id"] == "f4"
    assert out.index.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("resolved_after_days", "weight"),
    [(None, 1.5), (8.0, 1.5), (7.5, 1.5), (7.0, 1.0), (0.5, 1.0)],
    ids=["unresolved", "slow-8-days", "slow-7.5-days", "exactly-7-days", "same-day"],
)
def test_grievance_weight_for_unresolved_or_slowly_resolved(resolved_after_days: float | None, weight: float) -> None:
    f = _failures([("f", "c", "wrong_item", 4, 30, resolved_after_days)])
    assert aggrieved_segment(f, AggrievedRule()).iloc[0]["grievance"] == pytest.approx(4 * weight)


def test_slow_resolution_threshold_from_the_rule() -> None:
    f = _failures([("f", "c", "wrong_item", 2, 30, 3.0)])
    assert aggrieved_segment(f, AggrievedRule(slow_resolution_days=2)).iloc[0]["grievance"] == pytest.approx(3.0)
    assert aggrieved_segment(f, AggrievedRule(slow_resolution_days=3)).iloc[0]["grievance"] == pytest.approx(2.0)


def test_min_severity_drops_failures_from_choice_and_totals() -> None:
    f = _failures(
        [
            ("minor", "c5", "late_delivery", 1, 1, None),  # below the default min_severity 2
            ("major", "c5", "wrong_item", 4, 2, None),
            ("only_minor", "c4", "late_delivery", 1, 3, None),
        ]
    )
    out = aggrieved_segment(f, AggrievedRule())
    assert out["customer_id"].tolist() == ["c5"]
    row = out.iloc[0]
    assert row["failure_id"] == "major"
    assert row["failures"] == 1
    assert row["grievance"] == pytest.approx(6.0)


def test_min_severity_from_the_rule() -> None:
    f = _failures([("a", "c1", "outage", 3, 1, None), ("b", "c2", "outage", 4, 1, None)])
    assert aggrieved_segment(f, AggrievedRule(min_severity=4))["customer_id"].tolist() == ["c2"]
    assert sorted(aggrieved_segment(f, AggrievedRule(min_severity=3))["customer_id"]) == ["c1", "c2"]


def test_optional_columns_are_passed_through_or_filled() -> None:
    f = _failures([("a", "c1", "outage", 3, 1, None)])
    out = aggrieved_segment(f, AggrievedRule())
    assert out["description"].iloc[0] is None
    assert pd.isna(out["order_amount"].iloc[0])
    f["description"] = ["portal down for two days"]
    f["order_amount"] = [42.5]
    out = aggrieved_segment(f, AggrievedRule())
    assert out["description"].iloc[0] == "portal down for two days"
    assert out["order_amount"].iloc[0] == 42.5


@pytest.mark.parametrize(
    "failures",
    [
        pd.DataFrame(columns=list(FAILURE_COLUMNS)),
        _failures([("a", "c1", "outage", 1, 1, None)]),
    ],
    ids=["no-rows", "all-below-min-severity"],
)
def test_nothing_qualifies_gives_an_empty_frame_with_the_columns(failures: pd.DataFrame) -> None:
    out = aggrieved_segment(failures, AggrievedRule())
    assert out.empty
    assert list(out.columns) == OUT_COLUMNS


def test_missing_columns_named() -> None:
    f = _failures([("a", "c1", "outage", 3, 1, None)]).drop(columns=["severity"])
    with pytest.raises(ValueError, match=r"aggrieved_segment: required columns missing: severity"):
        aggrieved_segment(f, AggrievedRule())


# --------------------------------------------------------------------------- downstream: "already returned"


def _returned_since_failure(failures: pd.DataFrame, last_order: dt.datetime) -> bool:
    """build_candidates' verdict for one aggrieved customer whose last order was at `last_order`."""
    scored = pd.DataFrame(
        {
            "customer_id": ["c1"], "frequency": [2], "recency": [60.0], "days_since_last": [30.0],
            "p_active": [0.5], "customer_value": [100.0], "mean_spend": [40.0],
            "last_day": [to_epoch_days(last_order)],
        }
    )  # fmt: skip
    reach = pd.DataFrame(
        {"customer_id": ["c1"], "channel": ["email"], "channel_reason": [None], "do_not_contact": [False],
         "fraud_flag": [False]}
    )  # fmt: skip
    history = pd.DataFrame({"customer_id": ["c1"], "days_since_contact": [float("nan")], "messages_30d": [0]})
    out = build_candidates(
        scored, failures, reach, history, CampaignConfig(segments=["aggrieved"]), to_epoch_days(AS_OF)
    )
    return bool(out.loc[0, "returned_since_failure"])


def _one_resolved_failure(unit: str) -> pd.DataFrame:
    f = _failures([("f1", "c1", "damaged_item", 4, 20, 2)])  # occurred 20 days before AS_OF, fixed in 2
    for col in ("occurred_at", "resolved_at"):
        f[col] = f[col].astype(f"datetime64[{unit}, UTC]")
    return f


@pytest.mark.parametrize("days_after_failure", [-10.0, 0.5, 5.0], ids=["before", "same-day", "after"])
def test_returned_since_failure_with_nanosecond_timestamps(days_after_failure: float) -> None:
    last_order = AS_OF - dt.timedelta(days=20 - days_after_failure)
    returned = _returned_since_failure(_one_resolved_failure("ns"), last_order)
    assert returned is (days_after_failure > 1)


def test_returned_since_failure_with_microsecond_timestamps_as_open_failures_returns() -> None:
    # pd.to_datetime(..., utc=True), as open_failures does, yields microseconds under pandas 3
    # the customer last ordered 10 days BEFORE the failure: not returned
    assert _returned_since_failure(_one_resolved_failure("us"), AS_OF - dt.timedelta(days=30)) is False
