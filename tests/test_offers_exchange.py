"""Codes out to the shop, redemptions back in (all or nothing, named lines), and the ledger."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert, select

from winback.offers.exchange import RedemptionImportError, export_codes, import_redemptions, ledger
from winback.warehouse.models import Offer

CODES = ["WB-ACDE-FGHJ-KMNP", "WB-QRTU-VWXY-3467", "WB-9CDE-FGHJ-KMNP"]


@pytest.fixture
def run_id(engine: Engine) -> int:
    with engine.begin() as conn:
        rid = insert_run(conn)
        conn.execute(insert(Offer), [
            {"code": code, "run_id": rid, "customer_id": f"C{i}", "kind": "store_credit", "value": Decimal("10.00"),
             "currency": "EUR", "expected_cost": Decimal("3.50"), "issued_at": AS_OF,
             "expires_at": AS_OF + dt.timedelta(days=30)}
            for i, code in enumerate(CODES)
        ])  # fmt: skip
    return rid


def test_export_writes_every_code_once(engine: Engine, run_id: int, tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    with engine.connect() as conn:
        assert export_codes(conn, run_id, path) == 3
    rows = list(csv.DictReader(path.open()))
    assert sorted(r["code"] for r in rows) == sorted(CODES)
    assert {r["single_use"] for r in rows} == {"true"}
    assert rows[0]["expires_at"].startswith("2026-12-02")


def test_import_marks_redeemed_and_is_idempotent(engine: Engine, run_id: int) -> None:
    when = (AS_OF + dt.timedelta(days=3)).isoformat()
    rows = [{"code": "wb acde fghj kmnp", "order_id": "O-1", "redeemed_at": when}]
    with engine.begin() as conn:
        assert import_redemptions(conn, rows) == {"redeemed": 1, "already_recorded": 0}
    with engine.begin() as conn:
        assert import_redemptions(conn, rows) == {"redeemed": 0, "already_recorded": 1}
        order = conn.execute(select(Offer.redeemed_order_id).where(Offer.code == CODES[0])).scalar_one()
    assert order == "O-1"


def test_a_file_with_any_bad_row_changes_nothing_and_names_each_line(engine: Engine, run_id: int) -> None:
    ok = (AS_OF + dt.timedelta(days=1)).isoformat()
    rows = [
        {"code": CODES[0], "order_id": "O-1", "redeemed_at": ok},                      # line 2: fine
        {"code": "WB-XXXX-XXXX-XXXX", "order_id": "O-2", "redeemed_at": ok},           # line 3: unknown code
        {"code": CODES[1], "order_id": "O-3", "redeemed_at": "2026-11-03 10:00"},      # line 4: no zone
        {"code": CODES[2], "order_id": "", "redeemed_at": ok},                         # line 5: no order
        {"code": CODES[0], "order_id": "O-9", "redeemed_at": ok},                      # line 6: used twice
        {"code": CODES[1], "order_id": "O-4", "redeemed_at": (AS_OF + dt.timedelta(days=60)).isoformat()},  # expired
    ]  # fmt: skip
    with engine.begin() as conn, pytest.raises(RedemptionImportError) as caught:
        import_redemptions(conn, rows, source="shop.csv")
    lines = [line for line, _ in caught.value.problems]
    assert lines == [3, 4, 5, 6, 7]
    assert "line 3: unknown code WB-XXXX-XXXX-XXXX" in str(caught.value)
    assert f"line 6: code {CODES[0]} is single-use: already redeemed by order O-1 on line 2" in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(select(Offer.redeemed_at).where(Offer.redeemed_at.is_not(None))).first() is None


def test_ledger_counts_issued_redeemed_expired_and_open(engine: Engine, run_id: int) -> None:
    with engine.begin() as conn:
        import_redemptions(conn, [{"code": CODES[0], "order_id": "O-1",
                                   "redeemed_at": (AS_OF + dt.timedelta(days=2)).isoformat()}])  # fmt: skip
        during = ledger(conn, AS_OF + dt.timedelta(days=5)).iloc[0]
        after = ledger(conn, AS_OF + dt.timedelta(days=45)).iloc[0]
    assert (during["issued"], during["redeemed"], during["expired"], during["open"]) == (3, 1, 0, 2)
    assert (after["issued"], after["redeemed"], after["expired"], after["open"]) == (3, 1, 2, 0)
    assert during["money_issued"] == 30.0 and during["expected_cost"] == 10.5


def test_ledger_adds_up_money_only_and_counts_percent_and_free_codes(engine: Engine, run_id: int) -> None:
    """Run 1 once showed 685 "issued": 625 percentage points of percent codes plus €60 of store credit."""
    others = [  # (kind, value, expected cost): a refund states a percentage, its money is the expected cost
        ("percent_discount", "15.00", "1.20"), ("percent_discount", "10.00", "0.80"),
        ("refund_share", "20.00", "12.40"), ("free_shipping", "0.00", "0.15"), ("free_service", "10.00", "0.30"),
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Offer), [
            {"code": f"WB-MIXD-{i:04d}", "run_id": run_id, "customer_id": f"M{i}", "kind": kind,
             "value": Decimal(value), "currency": "EUR", "expected_cost": Decimal(cost), "issued_at": AS_OF,
             "expires_at": AS_OF + dt.timedelta(days=30)}
            for i, (kind, value, cost) in enumerate(others)
        ])  # fmt: skip
        row = ledger(conn, AS_OF + dt.timedelta(days=5)).iloc[0]
    assert "issued_value" not in row.index
    assert row["issued"] == 8 and row["money_issued"] == 42.4  # 3 × €10 store credit + the €12.40 refund
    assert (row["percent_codes"], row["free_shipping_codes"], row["free_service_codes"]) == (2, 1, 1)
    assert row["expected_cost"] == round(10.5 + 1.2 + 0.8 + 12.4 + 0.15 + 0.3, 2)


def test_a_code_listed_twice_is_named_on_its_second_line_and_never_counted_twice(engine: Engine, run_id: int) -> None:
    first, later = AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)
    rows = [
        {"code": CODES[0], "order_id": "O-1", "redeemed_at": first.isoformat()},
        {"code": CODES[1], "order_id": "O-2", "redeemed_at": first.isoformat()},
        {"code": CODES[0].lower(), "order_id": "O-1", "redeemed_at": later.isoformat()},  # same code, typed again
    ]
    with engine.begin() as conn, pytest.raises(RedemptionImportError) as caught:
        import_redemptions(conn, rows, source="shop.csv")
    assert caught.value.problems == [
        (4, f"code {CODES[0]} repeats line 2 (order O-1) with another time: {later.isoformat()} here, "
            f"{first.isoformat()} there"),
    ]  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(select(Offer.redeemed_at).where(Offer.redeemed_at.is_not(None))).first() is None


def test_an_identical_repeated_line_is_refused_too(engine: Engine, run_id: int) -> None:
    row = {"code": CODES[0], "order_id": "O-1", "redeemed_at": (AS_OF + dt.timedelta(days=1)).isoformat()}
    with engine.begin() as conn, pytest.raises(RedemptionImportError) as caught:
        import_redemptions(conn, [row, dict(row)])
    assert caught.value.problems == [(3, f"code {CODES[0]} repeats line 2 (order O-1)")]
    with engine.begin() as conn:  # one line is one redemption
        assert import_redemptions(conn, [row]) == {"redeemed": 1, "already_recorded": 0}
