"""A customer's latest decision and latest message: what `explain` and `preview` show."""

from __future__ import annotations

import datetime as dt

from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert

from winback.warehouse.latest import latest_decision, latest_message
from winback.warehouse.models import Decision, OutboxMessage

DAY = dt.timedelta(days=1)


def _decision(conn, run_id: int, customer: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        insert(Decision).values(
            run_id=run_id, customer_id=customer, segment="lapsed", action="contact", reason=reason, decided_at=AS_OF
        )
    )


def _message(conn, run_id: int, oid: str, customer: str, step: str, created: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        insert(OutboxMessage).values(
            id=oid, run_id=run_id, customer_id=customer, step=step, channel="email", template="winback",
            to_address="a@example.com", context={}, status="queued", not_before=created, created_at=created,
        )
    )  # fmt: skip


def test_the_latest_decision_is_from_the_run_with_the_latest_as_of(engine: Engine) -> None:
    with engine.begin() as conn:
        later = insert_run(conn, "autumn", AS_OF)  # created first, decides later
        earlier = insert_run(conn, "spring", AS_OF - 30 * DAY)
        _decision(conn, later, "C1", "newest")
        _decision(conn, earlier, "C1", "older")
        _decision(conn, earlier, "C2", "someone else")
    with engine.connect() as conn:
        row = latest_decision(conn, "C1")
        assert row is not None
        assert (row["reason"], row["campaign_id"], row["run_id"]) == ("newest", "autumn", later)
        assert latest_decision(conn, "C3") is None


def test_the_latest_message_is_the_newest_created_and_ties_go_to_the_larger_id(engine: Engine) -> None:
    with engine.begin() as conn:
        run = insert_run(conn, "spring", AS_OF)
        _message(conn, run, "m-b", "C1", "apology", AS_OF + DAY)
        _message(conn, run, "m-a", "C1", "resolved", AS_OF + 2 * DAY)
        _message(conn, run, "m-z", "C2", "apology", AS_OF + 3 * DAY)
        _message(conn, run, "m-c", "C3", "apology", AS_OF)
        _message(conn, run, "m-d", "C3", "resolved", AS_OF)
    with engine.connect() as conn:
        assert [latest_message(conn, c)["id"] for c in ("C1", "C2", "C3")] == ["m-a", "m-z", "m-d"]  # type: ignore[index]
        assert latest_message(conn, "nobody") is None
