"""RFM summary from transactions, and the calibration/holdout model check built on it."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CDNOW

from winback.segments.model_check import calibration_check, fit_transactions_file
from winback.segments.rfm import rfm_summary, unit_scale


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["cust", "when", "amount"])


# --------------------------------------------------------------------------- summary


def test_cdnow_customer_one_by_hand(cdnow_transactions: pd.DataFrame) -> None:
    """Customer 1 bought on 1997-01-01 ($29.33), 01-18 ($29.73), 08-02 ($14.96), 12-12 ($26.48)."""
    s = rfm_summary(
        cdnow_transactions,
        "customer_id",
        "date",
        "amount",
        observation_period_end="1998-06-30",
        calibration_period_end="1997-09-30",
        freq="D",
        time_unit="W",
    )
    one = s[s["customer_id"] == 1].iloc[0]
    assert one["frequency"] == 2
    assert one["recency"] == pytest.approx(213 / 7)  # 1997-01-01 .. 1997-08-02
    assert one["T"] == pytest.approx(272 / 7)  # 1997-01-01 .. 1997-09-30
    assert one["monetary_value"] == pytest.approx((29.73 + 14.96) / 2)
    assert one["frequency_holdout"] == 1
    assert one["monetary_value_holdout"] == pytest.approx(26.48)
    assert one["duration_holdout"] == pytest.approx(39.0)


def test_cdnow_calibration_counts(cdnow: pd.DataFrame) -> None:
    """`cdnow` (conftest) is rfm_summary of the sample over the 39-week calibration period, in weeks."""
    s = cdnow
    assert len(s) == 2357
    assert (s["frequency"] > 0).sum() == 946
    # Everyone was acquired in the first 12 weeks of 1997 and the window is 39 weeks long.
    assert s["T"].between(27.0, 272 / 7).all()
    assert (s["recency"] <= s["T"]).all()
    assert (s.loc[s["frequency"] == 0, ["recency", "monetary_value"]] == 0).all().all()


def test_purchases_in_one_period_count_once_and_sum() -> None:
    tx = _tx(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 17:00", 5.0),
            ("a", "2024-01-03", 7.0),
            ("a", "2024-01-03", 1.0),
            ("a", "2024-01-08", 20.0),
            ("b", "2024-01-05", 3.0),
        ]
    )
    daily = rfm_summary(tx, "cust", "when", "amount", observation_period_end="2024-01-10", freq="D")
    a = daily.set_index("customer_id").loc["a"]
    assert a["frequency"] == 2 and a["recency"] == 7 and a["T"] == 9
    assert a["monetary_value"] == pytest.approx((8.0 + 20.0) / 2)  # first day's $15 excluded
    # Weeks run Monday..Sunday ('W' = W-SUN): 01-01 and 01-03 share a week, 01-08 starts the next.
    weekly = rfm_summary(tx, "cust", "when", "amount", observation_period_end="2024-01-10", freq="W")
    a = weekly.set_index("customer_id").loc["a"]
    assert a["frequency"] == 1 and a["recency"] == 1 and a["T"] == 1
    assert a["monetary_value"] == pytest.approx(20.0)
    b = weekly.set_index("customer_id").loc["b"]
    assert b["frequency"] == 0 and b["recency"] == 0 and b["monetary_value"] == 0


def test_time_unit_converts_recency_and_t() -> None:
    tx = _tx([("a", "2024-01-01", 1.0), ("a", "2024-01-15", 1.0), ("a", "2024-01-22", 1.0)])
    s = rfm_summary(tx, "cust", "when", observation_period_end="2024-01-29", freq="D", time_unit="W")
    row = s.iloc[0]
    assert row["frequency"] == 2 and row["recency"] == 3.0 and row["T"] == 4.0
    assert "monetary_value" not in s.columns
    assert unit_scale("D", "W") == pytest.approx(1 / 7)
    assert unit_scale("h", "D") == pytest.approx(1 / 24)
    assert unit_scale("W", "W-SUN") == 1.0


def test_windows_drop_late_transactions_and_late_customers() -> None:
    tx = _tx(
        [
            ("a", "2024-01-01", 5.0),
            ("a", "2024-01-10", 6.0),
            ("a", "2024-02-05", 7.0),  # holdout
            ("a", "2024-02-06", 9.0),  # holdout
            ("a", "2024-05-01", 100.0),  # after the observation end: ignored
            ("b", "2024-02-01", 5.0),  # first seen in the holdout: not scoreable, left out
            ("c", "2024-01-20", 4.0),
        ]
    )
    s = rfm_summary(
        tx,
        "cust",
        "when",
        "amount",
        observation_period_end="2024-02-29",
        calibration_period_end="2024-01-31",
        freq="D",
    )
    assert s["customer_id"].tolist() == ["a", "c"]
    a = s.iloc[0]
    assert (a["frequency"], a["recency"], a["T"]) == (1, 9, 30)
    assert a["frequency_holdout"] == 2 and a["monetary_value_holdout"] == pytest.approx(8.0)
    assert s["duration_holdout"].tolist() == [29.0, 29.0]
    c = s.iloc[1]
    assert c["frequency_holdout"] == 0 and c["monetary_value_holdout"] == 0.0


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (_tx([("a", "2024-01-01", 1.0)]), {"monetary_value_col": "price"}, r"column 'price' not found"),
        (_tx([("a", "2024-01-01", 1.0)]), {"customer_id_col": "id"}, r"column 'id' not found"),
        (
            _tx([("a", "2024-01-01", 1.0), ("a", "not a date", 1.0), ("b", "2024-13-45", 2.0)]),
            {},
            r"could not parse 2 values in date column 'when' \(row 1: 'not a date', row 2: '2024-13-45'\)",
        ),
        (
            _tx([("a", "2024-01-01", 1.0), ("a", "2024-01-02", "ten")]),  # type: ignore[list-item]
            {},
            r"1 non-numeric values in amount column 'amount' \(row 1: 'ten'\)",
        ),
        (
            _tx([("a", "2024-01-01", 1.0), (None, "2024-01-02", 1.0)]),  # type: ignore[list-item]
            {},
            r"1 rows have no 'cust', first row 1",
        ),
        (
            _tx([("a", "2024-01-01", 1.0)]),
            {"calibration_period_end": "2024-03-01"},
            r"calibration_period_end 2024-03-01 must be before observation_period_end 2024-02-01",
        ),
        (_tx([("a", "2024-01-01", 1.0)]), {"observation_period_end": "someday"}, r"not a date: 'someday'"),
        (_tx([("a", "2024-01-01", 1.0)]), {"freq": "M", "time_unit": "W"}, r"'M' has no fixed length"),
    ],
    ids=[
        "missing-amount",
        "missing-id",
        "bad-dates",
        "bad-amount",
        "missing-customer",
        "calibration-after-end",
        "bad-end",
        "month-to-week",
    ],
)
def test_rfm_summary_rejects_bad_input(frame: pd.DataFrame, kwargs: dict[str, str], message: str) -> None:
    args = {
        "customer_id_col": "cust",
        "datetime_col": "when",
        "monetary_value_col": "amount",
        "observation_period_end": "2024-02-01",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        rfm_summary(frame, **args)


# --------------------------------------------------------------------------- model check


def _simulated_transactions(n: int, seed: int) -> pd.DataFrame:
    """Daily transactions from the BG/NBD story, customer by customer, independent of segments/."""
    rng = np.random.default_rng(seed)
    start = date(2023, 1, 2)
    rows: list[tuple[int, date, float]] = []
    for cust in range(n):
        lam = rng.gamma(0.5, 1 / 3.0)  # purchases a week while active
        p = rng.beta(0.9, 3.0)  # drop-out chance after each repeat purchase
        t = float(rng.integers(0, 84))  # acquired during the first 12 weeks (days)
        rows.append((cust, start + timedelta(days=t), 20.0))
        while True:
            t += rng.exponential(7.0 / lam)
            if t >= 7 * 78:
                break
            rows.append((cust, start + timedelta(days=int(t)), float(rng.gamma(5.0, 4.0))))
            if rng.random() < p:
                break
    return pd.DataFrame(rows, columns=["cust", "day", "spend"])


def test_calibration_check_on_simulated_customers_is_good() -> None:
    tx = _simulated_transactions(4000, seed=12)
    report = calibration_check(
        tx,
        "cust",
        "day",
        "spend",
        calibration_end="2023-09-30",
        observation_end=str(date(2023, 1, 2) + timedelta(days=7 * 78 - 1)),
        freq="D",
        time_unit="W",
    )
    json.dumps(report, allow_nan=False)
    assert report["verdict"].startswith("good"), report["verdict"]
    assert report["bgnbd"]["r"] == pytest.approx(0.5, rel=0.25)
    assert report["bgnbd"]["alpha"] == pytest.approx(3.0, rel=0.35)
    holdout = report["holdout"]
    assert abs(holdout["relative_error"]) <= 0.10
    groups = holdout["by_calibration_frequency"]
    assert sum(g["n_customers"] for g in groups) == report["data"]["n_customers"] == 4000
    assert holdout["mean_predicted"] == pytest.approx(holdout["total_predicted"] / 4000)


def test_fit_transactions_file_with_holdout_reproduces_published_fit() -> None:
    report = fit_transactions_file(
        CDNOW, "customer_id", "date", "amount", calibration_end="1997-09-30", freq="D", time_unit="W"
    )
    json.dumps(report, allow_nan=False)
    assert report["data"]["n_customers"] == 2357 and report["data"]["n_repeat_buyers"] == 946
    assert report["data"]["observation_end"] == "1998-06-30"
    assert report["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, abs=0.5)
    assert report["gamma_gamma"]["p"] == pytest.approx(6.25, rel=0.02)
    groups = report["holdout"]["by_calibration_frequency"]
    assert [g["frequency"] for g in groups] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert groups[0]["n_customers"] == 1411
    assert report["holdout"]["total_actual"] > 0
    assert report["verdict"].split(":")[0] in {"good", "fair", "poor"}


def test_fit_transactions_file_without_holdout(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    tx = _simulated_transactions(600, seed=3).rename(columns={"cust": "client", "day": "ordered"})
    tx["client"] = tx["client"].map(lambda c: f"{c:05d}")
    tx.to_csv(path, index=False)
    report = fit_transactions_file(path, "client", "ordered")
    json.dumps(report, allow_nan=False)
    assert set(report) == {"data", "bgnbd"}
    assert report["data"]["n_customers"] == 600 and report["bgnbd"]["converged"]
    with_money = fit_transactions_file(path, "client", "ordered", "spend")
    assert with_money["gamma_gamma"]["q"] > 1


def test_fit_transactions_file_names_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    _tx([("a", "2024-01-01", 1.0)]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'date' not found"):
        fit_transactions_file(path, "cust", "date")
    with pytest.raises(ValueError, match=r"column 'total' not found"):
        fit_transactions_file(path, "cust", "when", "total")
