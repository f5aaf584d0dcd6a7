"""The service-recovery journey, one step at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd
import pytest
from conftest import AS_OF, LINKS, local_source
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from winback.channels.sink import SinkChannel
from winback.delivery.dispatch import send_due
from winback.settings import Settings
from winback.stages import recovery_decide, recovery_sweep
from winback.stages.recovery import CAMPAIGN_ID, RecoverySetup, recover
from winback.stages.recovery_sweep import recover_pending
from winback.warehouse import journeys
from winback.warehouse.journeys import returned_customers
from winback.warehouse.models import CrmEvent, Decision, Offer, OutboxMessage
from winback.warehouse.source import SourceMapping, SourceTables
from winback.warehouse.suppressions import suppress

SRC = SourceTables(SourceMapping())
NOON = AS_OF.replace(hour=12)  # daytime in Europe: no quiet-hours deferral


def reachable_london_customer(engine: Engine, *, locale: str | None = None, biggest_spender: bool = False) -> str:
    """A reachable London customer with email consent and no flags (the first by id, or the biggest spender)."""
    spend = "JOIN orders o ON o.customer_id = c.customer_id " if biggest_spender else ""
    order = "GROUP BY c.customer_id ORDER BY sum(o.amount) DESC" if biggest_spender else "ORDER BY c.customer_id"
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT c.customer_id FROM customers c JOIN consents k ON k.customer_id = c.customer_id "
                f"AND k.channel = 'email' AND k.granted {spend}WHERE c.time_zone = 'Europe/London' "
                f"{'AND c.locale = :locale ' if locale else ''}"
                "AND c.email LIKE '%@%.%' AND c.email NOT LIKE '% %' AND NOT c.do_not_contact AND NOT c.fraud_flag "
                f"AND (c.preferred_channel IS NULL OR c.preferred_channel = 'email') {order} LIMIT 1"
            ),
            {"locale": locale} if locale else {},
        ).scalar_one()


@pytest.fixture
def customer(demo_engine: Engine) -> str:
    return reachable_london_customer(demo_engine)


def receive(
    engine: Engine,
    event_id: str,
    customer: str,
    type_: str,
    severity: int,
    ticket: str = "T-1",
    category: str | None = "damaged_item",
    *,
    occurred: dt.datetime = NOON,
    received: dt.datetime = NOON,
    description: str = "Box crushed in transit",
) -> str:
    """Record an event in the ledger as the intake would (category None: left out, as older intakes let it);
    `occurred` may be long before `received`."""
    payload = {
        "event_id": event_id,
        "type": type_,
        "customer_id": customer,
        "order_id": "O-77",
        "ticket_id": ticket,
        "category": category,
        "severity": severity,
        "occurred_at": occurred.isoformat(),
        "description": description,
    }
    if category is None:
        del payload["category"]
    with engine.begin() as conn:
        conn.execute(
            insert(CrmEvent).values(
                event_id=event_id, type=type_, customer_id=customer, payload=payload, received_at=received
            )
        )
    return event_id


def outbox(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(select(OutboxMessage.__table__).order_by(OutboxMessage.not_before), conn)


def channels(sink: SinkChannel) -> dict[str, SinkChannel]:
    return {"email": sink, "sms": sink}


@pytest.fixture
def recovery_setup(settings: Settings, sink: SinkChannel) -> RecoverySetup:
    """Recovery as the edge sets it up, sending through the test's sink."""
    return RecoverySetup.from_settings(settings, channels=channels(sink))


def test_severe_complaint_gets_apology_with_compensation_at_once_then_follow_up(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=5)
    result = recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    assert result["action"] == "contact", result["reason"]
    rows = outbox(demo_engine).set_index("step")
    assert list(rows.index) == ["apology", "follow_up"]
    assert rows.loc["apology", "status"] == "sent"
    assert rows.loc["follow_up", "status"] == "queued"
    assert pd.Timestamp(rows.loc["follow_up", "not_before"]).tz_localize(None) >= pd.Timestamp(
        NOON + dt.timedelta(days=7)
    ).tz_localize(None)
    with demo_engine.connect() as conn:
        arm = conn.execute(select(Decision.arm).where(Decision.customer_id == customer)).scalar_one()
        codes = conn.execute(select(Offer.code)).scalars().all()
    sent = sink.records()[0]
    assert "O-77" in sent["subject"] and "arrived damaged" in sent["text"]
    if arm == "treatment" and codes:  # severe: the compensation travels with the apology
        assert codes[0] in sent["text"]
    else:
        assert "code" not in sent["text"].lower()


def test_the_same_event_twice_causes_one_recovery(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    again = recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    assert again["queued"] == 0
    assert len(outbox(demo_engine)) == 2
    assert len(sink.records()) == 1


def test_mild_complaint_then_ticket_closed_sends_resolved_with_the_offer(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=2)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    first = sink.records()
    assert len(first) == 1 and "code" not in first[0]["text"].lower()  # mild: no compensation at once
    receive(demo_engine, "E2", customer, "ticket.closed", severity=2)
    recover(demo_engine, demo_engine, SRC, "E2", NOON + dt.timedelta(hours=3), recovery_setup)
    rows = outbox(demo_engine).set_index("step")
    assert set(rows.index) == {"apology", "resolved", "follow_up"}  # same journey: one follow-up only
    assert rows.loc["resolved", "status"] == "sent"
    with demo_engine.connect() as conn:
        codes = conn.execute(select(Offer.code)).scalars().all()
    resolved = sink.records()[1]
    assert "put it right" in resolved["text"]
    assert all(code in resolved["text"] for code in codes)


def test_follow_up_stops_when_the_customer_returns(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    with demo_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orders (order_id, customer_id, ordered_at, amount) VALUES ('BACK-1', :c, :t, 20)"),
            {"c": customer, "t": (NOON + dt.timedelta(days=2)).replace(tzinfo=None)},
        )
    later = NOON + dt.timedelta(days=8)
    send_due(
        demo_engine,
        channels(sink),
        now=later,
        stop_check=returned_customers(demo_engine, SRC),
        source=local_source(demo_engine),
        links=LINKS,
    )
    follow_up = outbox(demo_engine).set_index("step").loc["follow_up"]
    assert follow_up["status"] == "skipped"
    assert follow_up["last_error"] == "customer returned: journey stopped"


def test_follow_up_stops_when_the_customer_opts_out(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    with demo_engine.begin() as conn:
        suppress(conn, customer, "email", "unsubscribe", "test", NOON)
    send_due(
        demo_engine, channels(sink), now=NOON + dt.timedelta(days=8), source=local_source(demo_engine), links=LINKS
    )
    assert outbox(demo_engine).set_index("step").loc["follow_up", "last_error"] == "suppressed at send time"


def test_a_new_failure_replans_the_journey(demo_engine: Engine, customer: str, recovery_setup: RecoverySetup) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=3, ticket="T-1")
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    receive(demo_engine, "E9", customer, "complaint.created", severity=4, ticket="T-2")
    result = recover(demo_engine, demo_engine, SRC, "E9", NOON + dt.timedelta(days=1), recovery_setup)
    assert result["superseded"] == 1
    rows = outbox(demo_engine)
    old = rows.loc[(rows["run_id"] != result["run_id"]) & (rows["step"] == "follow_up")].iloc[0]
    assert old["status"] == "skipped" and old["last_error"] == "superseded by a newer failure"
    new = rows.loc[rows["run_id"] == result["run_id"]]
    assert set(new["step"]) == {"apology", "follow_up"}


def test_unknown_event_and_unknown_customer_fail_clearly(demo_engine: Engine, recovery_setup: RecoverySetup) -> None:
    with pytest.raises(ValueError, match="'NOPE' was never received"):
        recover(demo_engine, demo_engine, SRC, "NOPE", NOON, recovery_setup)
    receive(demo_engine, "E5", "C9999999", "complaint.created", severity=3)
    with pytest.raises(ValueError, match="customer 'C9999999' is not in the customers table"):
        recover(demo_engine, demo_engine, SRC, "E5", NOON, recovery_setup)
    assert CAMPAIGN_ID == "crm-recovery"


def test_compensation_stops_when_the_monthly_recovery_budget_is_spent(
    demo_engine: Engine, customer: str, settings: Settings, sink: SinkChannel
) -> None:
    spent = RecoverySetup.from_settings(settings.model_copy(update={"recovery_budget": 0.0}), channels(sink))
    receive(demo_engine, "E1", customer, "complaint.created", severity=5)
    result = recover(demo_engine, demo_engine, SRC, "E1", NOON, spent)
    assert result["action"] == "contact"
    with demo_engine.connect() as conn:
        assert conn.execute(select(Offer.code)).first() is None
    apology = sink.records()[0]
    assert "arrived damaged" in apology["text"] and "code" not in apology["text"].lower()


def test_an_event_whose_trigger_never_ran_is_recovered_by_the_sweeper(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    assert (
        recover_pending(demo_engine, demo_engine, SRC, NOON + dt.timedelta(seconds=30), recovery_setup) == {}
    )  # still settling
    swept = recover_pending(demo_engine, demo_engine, SRC, NOON + dt.timedelta(minutes=5), recovery_setup)
    assert swept == {"E1": "contact"}
    assert outbox(demo_engine).set_index("step").loc["apology", "status"] == "sent"
    assert (
        recover_pending(demo_engine, demo_engine, SRC, NOON + dt.timedelta(minutes=10), recovery_setup) == {}
    )  # processed once
    assert len(sink.records()) == 1


SWEEP = NOON + dt.timedelta(minutes=5)  # past the sweeper's settling time


def decisions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Decision)).scalar_one()


def test_an_event_without_a_category_fails_naming_it_before_anything_is_recorded(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup
) -> None:
    """(Was a bug: a `contact` decision was recorded, then the template check refused a generic apology naming
    no event, and the sweeper retried it every hour.) Such events now only come from an old ledger."""
    receive(demo_engine, "E-nocat", customer, "complaint.created", severity=5, category=None)
    with pytest.raises(ValueError, match=r"CRM event 'E-nocat' \(complaint.created\) has no category"):
        recover(demo_engine, demo_engine, SRC, "E-nocat", NOON, recovery_setup)
    assert decisions(demo_engine) == 0
    assert outbox(demo_engine).empty
    assert recover_pending(demo_engine, demo_engine, SRC, SWEEP, recovery_setup)["E-nocat"].startswith(
        "error: E-nocat: CRM event"
    )


def test_an_event_that_is_neither_complaint_nor_ticket_is_marked_ignored_once(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup
) -> None:
    receive(demo_engine, "E-note", customer, "customer.note_added", severity=1, category=None)
    assert recover_pending(demo_engine, demo_engine, SRC, SWEEP, recovery_setup) == {"E-note": "ignored"}
    assert (
        recover_pending(demo_engine, demo_engine, SRC, SWEEP + dt.timedelta(hours=1), recovery_setup) == {}
    )  # not tried again
    assert decisions(demo_engine) == 0 and outbox(demo_engine).empty


def test_a_customer_erased_since_the_journey_began_fails_naming_event_and_customer(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup
) -> None:
    """(Was an IndexError: the decision was already recorded, so only the contact details were missing.)"""
    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    with demo_engine.begin() as conn:
        conn.execute(text("DELETE FROM customers WHERE customer_id = :c"), {"c": customer})
    receive(demo_engine, "E2", customer, "ticket.closed", severity=3)
    with pytest.raises(ValueError, match=rf"CRM event 'E2': customer '{customer}' has no contact details"):
        recover(demo_engine, demo_engine, SRC, "E2", NOON + dt.timedelta(hours=3), recovery_setup)


def test_the_sweeper_reports_any_error_without_contact_data_and_carries_on(
    demo_engine: Engine,
    customer: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    recovery_setup: RecoverySetup,
) -> None:
    """(Was a bug: only ValueError was caught, so e.g. an IntegrityError stopped the sweep and the hourly send.)"""
    receive(demo_engine, "E-bad", customer, "complaint.created", severity=3, ticket="T-bad")
    receive(demo_engine, "E-good", customer, "complaint.created", severity=3, ticket="T-good")
    driver = Exception('duplicate key value violates unique constraint "customers_pkey"\nDETAIL: (jane@example.com)')
    duplicate = IntegrityError("INSERT INTO customers ...", {"email": "jane@example.com"}, driver)
    real = recovery_sweep.recover

    def recover_or_fail(state: Engine, warehouse: Engine, src: SourceTables, event_id: str, *args: Any) -> dict:
        if event_id == "E-bad":
            raise duplicate
        return real(state, warehouse, src, event_id, *args)

    monkeypatch.setattr(recovery_sweep, "recover", recover_or_fail)
    with caplog.at_level(logging.ERROR, logger="winback.stages.recovery_sweep"):
        swept = recover_pending(demo_engine, demo_engine, SRC, SWEEP, recovery_setup)
    assert swept == {
        "E-bad": 'error: E-bad: IntegrityError: duplicate key value violates unique constraint "customers_pkey"',
        "E-good": "contact",
    }
    assert "CRM event E-bad not recovered: IntegrityError" in caplog.text
    assert "recover_or_fail" in caplog.text  # where it broke: the traceback's frames
    assert "jane" not in caplog.text


def test_the_hourly_send_goes_out_when_the_crm_sweep_fails(
    demo_engine: Engine, customer: str, monkeypatch: pytest.MonkeyPatch, recovery_setup: RecoverySetup
) -> None:
    """(Was a bug: the sweep ran first and its failure stopped quiet-hours and retry sends for every campaign.)"""
    import winback.flows.dispatch as dispatch
    from winback.stages import recovery_sweep

    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)

    def broken_sweep(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise ConnectionError("CRM ledger unreachable")

    monkeypatch.setattr(recovery_sweep, "recover_pending", broken_sweep)  # the sweep task imports it when it runs
    url = demo_engine.url.render_as_string(hide_password=False)
    with pytest.raises((ConnectionError, RuntimeError)) as failure:
        dispatch.dispatch_outbox(now=NOON + dt.timedelta(days=8), database_url_override=url)
    assert outbox(demo_engine).set_index("step").loc["follow_up", "status"] == "sent"  # sent all the same
    assert failure.type is dispatch.CrmSweepFailed  # and the run still fails, for on-call to see
    assert "(ConnectionError); everything due was sent: " in str(failure.value) and "'sent': 1" in str(failure.value)


def test_the_hourly_result_lists_the_events_not_recovered() -> None:
    from winback.stages.recovery_sweep import sweep_summary

    assert sweep_summary({}) == {}
    assert sweep_summary({"E1": "contact", "E2": "error: E2: boom", "E3": "ignored"}) == {
        "recovered_crm_events": 2,
        "crm_event_errors": ["error: E2: boom"],
    }


def test_a_crash_before_superseding_the_older_journey_is_made_good_by_the_retry(
    demo_engine: Engine, customer: str, monkeypatch: pytest.MonkeyPatch, recovery_setup: RecoverySetup
) -> None:
    """(Was a bug: the run was committed first and superseding done after, only for a run just created, so a
    retry after a crash in between left the older ticket's follow-up queued, to be sent.)"""
    receive(demo_engine, "E1", customer, "complaint.created", severity=3, ticket="T-1")
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    receive(demo_engine, "E9", customer, "complaint.created", severity=4, ticket="T-2")
    real = journeys.supersede_other_journeys
    attempts: list[int] = []

    def crash_the_first_time(*args: Any, **kwargs: Any) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("worker lost its database connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(journeys, "supersede_other_journeys", crash_the_first_time)
    later = NOON + dt.timedelta(days=1)
    with pytest.raises(ConnectionError):
        recover(demo_engine, demo_engine, SRC, "E9", later, recovery_setup)
    result = recover(demo_engine, demo_engine, SRC, "E9", later, recovery_setup)
    assert result["superseded"] == 1
    rows = outbox(demo_engine)
    old = rows.loc[(rows["run_id"] != result["run_id"]) & (rows["step"] == "follow_up")].iloc[0]
    assert old["status"] == "skipped" and old["last_error"] == "superseded by a newer failure"


def test_a_held_out_customer_gets_the_apology_and_keeps_the_kind_they_would_have_had(
    demo_engine: Engine, monkeypatch: pytest.MonkeyPatch, recovery_setup: RecoverySetup, sink: SinkChannel
) -> None:
    customer = reachable_london_customer(demo_engine, biggest_spender=True)  # worth compensating
    monkeypatch.setattr(recovery_decide, "held_out", lambda campaign, cid, share: True)  # drawn into the holdout
    receive(demo_engine, "E1", customer, "complaint.created", severity=5)
    result = recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    assert result["action"] == "contact", result["reason"]
    assert "compensation held out (random control)" in result["reason"]
    with demo_engine.connect() as conn:
        arm, kind, cost = conn.execute(
            select(Decision.arm, Decision.offer_kind, Decision.offer_cost).where(Decision.customer_id == customer)
        ).one()
        codes = conn.execute(select(func.count()).select_from(Offer)).scalar_one()
    assert arm == "holdout" and kind != "none"  # compared by kind with those who were given it
    assert cost == 0.0 and codes == 0  # nothing given, nothing spent
    sent = sink.records()[0]
    assert "arrived damaged" in sent["text"] and "code" not in sent["text"].lower()  # the apology all the same


def test_journey_rows_carry_the_recipients_zone_for_the_send_time_check(
    demo_engine: Engine, customer: str, recovery_setup: RecoverySetup
) -> None:
    from winback.messages.quiet_hours import send_window

    receive(demo_engine, "E1", customer, "complaint.created", severity=3)
    recover(demo_engine, demo_engine, SRC, "E1", NOON, recovery_setup)
    rows = outbox(demo_engine)
    assert len(rows) >= 2  # the apology and the follow-up a week on
    assert {send_window(ctx) for ctx in rows["context"]} == {("Europe/London", 8, 21)}
