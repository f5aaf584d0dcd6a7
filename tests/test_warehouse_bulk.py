"""warehouse.bulk: executemany of tuples must store exactly what SQLAlchemy Core would, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import insert_run
from sqlalchemy import Engine, insert, select

from winback.warehouse.bulk import insert_columns, update_by_key
from winback.warehouse.models import OutboxMessage
from winback.warehouse.outbox import claim_due, enqueue

AT = dt.datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=dt.UTC)


def _run(engine: Engine) -> int:
    with engine.begin() as conn:
        return insert_run(conn, "bulk", AT, status="queued")


def _row(run_id: int, i: int) -> dict:
    return {
        "id": f"m{i:03d}", "run_id": run_id, "customer_id": f"C{i}", "step": "winback", "channel": "email",
        "template": "winback", "to_address": f"c{i}@example.com", "context": {"first_name": "Zoë", "n": i},
        "status": "queued", "attempts": 0, "not_before": AT + dt.timedelta(hours=i), "created_at": AT,
    }  # fmt: skip


def _stored(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        table = OutboxMessage.__table__
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def test_bulk_insert_stores_what_core_stores(engine: Engine) -> None:
    """Datetimes, JSON and text come back alike whether written by Core or by insert_columns."""
    run_id = _run(engine)
    rows = [_row(run_id, i) for i in range(4)]
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage), rows[:2])
        added = insert_columns(conn, OutboxMessage.__table__, {k: [r[k] for r in rows[2:]] for k in rows[0]})
    assert added == 2
    stored = _stored(engine)
    for core, bulk in [(stored[0], stored[2]), (stored[1], stored[3])]:
        assert type(core["not_before"]) is type(bulk["not_before"])
        assert bulk["not_before"].replace(tzinfo=dt.UTC) - core["not_before"].replace(tzinfo=dt.UTC) == dt.timedelta(
            hours=2
        )
        assert bulk["context"]["first_name"] == core["context"]["first_name"] == "Zoë"
    assert [r["context"]["n"] for r in stored] == [0, 1, 2, 3]


def test_enqueue_skips_ids_already_there_and_never_touches_them(engine: Engine) -> None:
    run_id = _run(engine)
    with engine.begin() as conn:
        assert enqueue(conn, [_row(run_id, 0), _row(run_id, 1)]) == 2
    changed = {**_row(run_id, 1), "to_address": "changed@example.com"}
    with engine.begin() as conn:
        assert enqueue(conn, [changed, _row(run_id, 2)]) == 1
    assert [r["to_address"] for r in _stored(engine)] == ["c0@example.com", "c1@example.com", "c2@example.com"]


def test_claims_take_the_oldest_first_and_ties_as_they_were_queued(engine: Engine) -> None:
    """Ties of one send time are claimed batch by batch (each in id order), not by id across batches: no sort."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the order of ties is the index's: on PostgreSQL the heap's, not asserted")
    run_id = _run(engine)
    first = [{**_row(run_id, i), "id": f"m{9 - i}", "not_before": AT} for i in range(3)]  # m9, m8, m7
    second = [{**_row(run_id, i), "id": f"m{i}", "not_before": AT} for i in range(3, 6)]  # m3, m4, m5
    earlier = {**_row(run_id, 6), "id": "z", "not_before": AT - dt.timedelta(hours=1)}
    with engine.begin() as conn:
        enqueue(conn, first)
        enqueue(conn, second)
        enqueue(conn, [earlier])
    claimed = []
    for size in (1, 2, 3, 1, 1):
        with engine.begin() as conn:
            claimed.append({row["id"] for row in claim_due(conn, AT, size, "tok", run_id)})
    assert claimed == [{"z"}, {"m7", "m8"}, {"m9", "m3", "m4"}, {"m5"}, set()]


def test_a_claim_takes_only_due_queued_rows_of_its_run_and_channel_and_never_one_claimed(engine: Engine) -> None:
    run_id = _run(engine)
    with engine.begin() as conn:
        other_run = insert_run(conn, "bulk", AT - dt.timedelta(days=7), status="queued")
    rows = [{**_row(run_id, i), "not_before": AT + dt.timedelta(minutes=i)} for i in range(6)]
    rows[1]["channel"] = "sms"
    rows[2]["status"] = "sent"
    rows[5]["not_before"] = AT + dt.timedelta(days=1)  # not due yet
    elsewhere = {**_row(other_run, 9), "id": "other", "not_before": AT - dt.timedelta(days=1)}
    with engine.begin() as conn:
        enqueue(conn, [*rows, elsewhere])
    now = AT + dt.timedelta(hours=1)
    with engine.begin() as conn:
        first = claim_due(conn, now, 2, "tok-a", run_id, "email")
    with engine.begin() as conn:
        second = claim_due(conn, now, 10, "tok-b", run_id, "email")
    # which rows, not in what order RETURNING gives them (PostgreSQL's follows its plan)
    assert {r["id"] for r in first} == {"m000", "m003"}  # oldest due first; the SMS row and the sent one skipped
    assert [r["id"] for r in second] == ["m004"]  # the first claim's rows are no longer queued; m005 is not due
    contexts = {r["id"]: r["context"] for r in first}
    assert contexts["m000"] == {"first_name": "Zoë", "n": 0}  # decoded, as a sender reads it
    stored = {r["id"]: r for r in _stored(engine)}
    assert {i: (stored[i]["status"], stored[i]["claimed_by"], stored[i]["attempts"]) for i in stored} == {
        "m000": ("sending", "tok-a", 1), "m003": ("sending", "tok-a", 1), "m004": ("sending", "tok-b", 1),
        "m001": ("queued", None, 0), "m002": ("sent", None, 0), "m005": ("queued", None, 0),
        "other": ("queued", None, 0),
    }  # fmt: skip


def test_update_by_key_changes_only_the_matched_rows(engine: Engine) -> None:
    run_id = _run(engine)
    with engine.begin() as conn:
        enqueue(conn, [_row(run_id, i) for i in range(3)])
        update_by_key(
            conn, OutboxMessage.__table__, "id",
            {"id": ["m000", "m002"], "status": ["sent", "failed"], "sent_at": [AT, None]},
        )  # fmt: skip
    stored = _stored(engine)
    assert [r["status"] for r in stored] == ["sent", "queued", "failed"]
    assert stored[0]["sent_at"].replace(tzinfo=dt.UTC) == AT and stored[2]["sent_at"] is None


def test_update_by_key_given_a_key_twice_keeps_the_last_values(engine: Engine) -> None:
    """As an executemany of single UPDATEs leaves it: PostgreSQL's COPY + UPDATE ... FROM must agree."""
    run_id = _run(engine)
    with engine.begin() as conn:
        enqueue(conn, [_row(run_id, 0)])
        update_by_key(
            conn, OutboxMessage.__table__, "id",
            {"id": ["m000", "m000"], "status": ["failed", "sent"], "attempts": [1.0, 2.0]},
        )  # fmt: skip
    stored = _stored(engine)[0]
    assert (stored["status"], stored["attempts"]) == ("sent", 2)


def test_columns_of_unequal_length_are_refused_naming_the_table(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match=r"wb_outbox: columns of unequal length"):
        insert_columns(conn, OutboxMessage.__table__, {"id": ["a", "b"], "customer_id": ["C1"]})
    with engine.begin() as conn, pytest.raises(ValueError, match=r"wb_outbox: columns of unequal length"):
        update_by_key(conn, OutboxMessage.__table__, "id", {"id": ["a"], "status": ["sent", "failed"]})


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", None])
def test_pandas_datetimes_for_sqlite_are_the_text_sqlalchemy_stores(zone: str | None) -> None:
    import numpy as np
    import pandas as pd
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from winback.warehouse.bulk import sqlite_datetimes

    rng = np.random.default_rng(4)
    micros = rng.integers(0, 2_000_000_000_000_000, 2_000)  # 1970 to 2033, to the microsecond
    stamps = pd.Series(pd.to_datetime(micros, unit="us"))
    stamps[::7] = stamps[::7].dt.floor("s")  # whole seconds too
    stamps[::11] = pd.NaT
    if zone:
        stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(zone)
    dialect = sqlite.dialect()
    process = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    expected = [None if pd.isna(v) else process(v.to_pydatetime()) for v in stamps]
    assert sqlite_datetimes(stamps) == expected
    assert sqlite_datetimes(stamps[::11]) == [None] * len(stamps[::11])  # nothing but missing times
    assert sqlite_datetimes(stamps[:0]) == []


def test_decisions_with_last_order_times_round_trip(engine: Engine) -> None:
    import pandas as pd

    from winback.warehouse.models import Decision
    from winback.warehouse.runs import DECISION_FIELDS, record_decisions
    from winback.warehouse.timeutil import utc

    run_id = _run(engine)
    frame = pd.DataFrame({name: [None, None, None] for name in DECISION_FIELDS})
    frame["customer_id"] = ["C3", "C1", "C2"]  # stored in customer order, whatever order they come in
    frame["segment"], frame["action"], frame["reason"] = "lapsed", "skip", "r"
    frame["last_order_at"] = pd.to_datetime(
        ["2026-01-02 03:04:05.678", None, "2025-12-31 23:59:59"], utc=True, format="ISO8601"
    )
    with engine.begin() as conn:
        record_decisions(conn, run_id, frame)
    with engine.connect() as conn:
        rows = conn.execute(select(Decision.customer_id, Decision.last_order_at).order_by(Decision.id)).all()
    assert [r[0] for r in rows] == ["C1", "C2", "C3"]
    stored = {r[0]: r[1] and utc(r[1]) for r in rows}  # SQLite gives naive UTC back
    assert stored == {
        "C1": None,
        "C2": dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        "C3": dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
    }


def test_only_the_kept_decisions_features_are_stored_in_every_chunk(engine: Engine) -> None:
    """Chunks of three, in customer order: one all kept, one mixed, one with nothing kept."""
    import pandas as pd

    from winback.warehouse.models import Decision
    from winback.warehouse.runs import DECISION_FIELDS, record_decisions

    run_id = _run(engine)
    ids = ["C7", "C2", "C5", "C1", "C8", "C4", "C3", "C6", "C9"]
    frame = pd.DataFrame({name: [None] * len(ids) for name in DECISION_FIELDS})
    frame["customer_id"], frame["segment"], frame["action"], frame["reason"] = ids, "lapsed", "skip", "r"
    features = pd.DataFrame({"frequency": range(len(ids)), "locale": [f"l{c}" for c in ids]})
    kept = pd.Series([c in {"C1", "C2", "C3", "C5"} for c in ids])
    with engine.begin() as conn:
        record_decisions(conn, run_id, frame, features, chunk=3, features_kept=kept)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Decision.customer_id, Decision.features)).all())
    assert stored == {
        "C1": {"frequency": 3, "locale": "lC1"},
        "C2": {"frequency": 1, "locale": "lC2"},
        "C3": {"frequency": 6, "locale": "lC3"},
        "C4": None,
        "C5": {"frequency": 2, "locale": "lC5"},
        **{c: None for c in ("C6", "C7", "C8", "C9")},
    }


def test_numpy_columns_are_bound_as_the_column_types_bind_python_values(engine: Engine) -> None:
    """Floats with NaN, whole numbers in a float column for an integer column, serialised JSON text and None.

    The numpy fast paths must store what the per-value path (Python values, the types' processors) stores.
    """
    import numpy as np
    import pandas as pd

    from winback.warehouse.models import Decision

    run_id = _run(engine)
    n = 6
    severity = pd.Series([1.0, np.nan, 4.0, 0.0, -3.0, np.nan])
    gain = pd.Series([0.1, np.nan, -0.0, 1e300, 12.345, np.nan])
    features = ['{"a":1}', None, '{"b":"Zoë"}', "{}", None, '{"c":[1,2]}']
    base = {
        "segment": ["lapsed"] * n, "action": ["skip"] * n, "reason": ["r"] * n,
        "failure_category": pd.Series(["x", None, "y", None, "z", "w"], dtype="str"),
    }  # fmt: skip
    with engine.begin() as conn:
        for prefix, as_python in (("P", True), ("N", False)):
            columns = {
                **base,
                "customer_id": [f"{prefix}{i}" for i in range(n)],
                "severity": [None if np.isnan(v) else v for v in severity] if as_python else severity,
                "expected_gain": [None if np.isnan(v) else v for v in gain] if as_python else gain,
                "features": features if as_python else pd.Series(features, dtype=object),
            }
            if as_python:
                columns["failure_category"] = (
                    columns["failure_category"].astype(object).where(columns["failure_category"].notna(), None).tolist()
                )
            insert_columns(conn, Decision.__table__, columns, {"run_id": run_id, "decided_at": AT})
    names = ["severity", "expected_gain", "features", "failure_category"]
    with engine.connect() as conn:
        stored = conn.execute(
            select(Decision.customer_id, *(Decision.__table__.c[c] for c in names)).order_by(Decision.customer_id)
        ).all()
    python = [row[1:] for row in stored if row[0].startswith("P")]
    numpy = [row[1:] for row in stored if row[0].startswith("N")]
    assert [tuple(map(type, r)) for r in numpy] == [tuple(map(type, r)) for r in python]
    assert numpy == python
    assert [r[0] for r in numpy] == [1, None, 4, 0, -3, None] and type(numpy[0][0]) is int
    assert [r[1] for r in numpy] == [0.1, None, -0.0, 1e300, 12.345, None]
    assert numpy[2][2] == {"b": "Zoë"} and numpy[1][2] is None


def test_python_values_of_numpy_columns() -> None:
    import numpy as np
    import pandas as pd

    from winback.warehouse.bulk import python_values

    floats = python_values(pd.Series([1.5, np.nan, -0.0]))
    assert floats == [1.5, None, -0.0] and type(floats[0]) is float
    ints = python_values(pd.Series([1, 2], dtype="int32"))
    assert ints == [1, 2] and type(ints[0]) is int
    assert python_values(pd.Series([True, False])) == [True, False]
    assert python_values(pd.Series(["a", None], dtype="str")) == ["a", None]
