"""What a recovery message says about its code: the money a refund is worth, and a date still to come."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
import test_recovery as recovery_tests
from sqlalchemy import Engine, Row, select, text, update
from test_recovery import reachable_london_customer

from winback.channels.sink import SinkChannel
from winback.offers.policy import CompensationPolicy
from winback.settings import Settings
from winback.stages.recovery import RecoverySetup, recover
from winback.warehouse.models import Decision, Offer, OutboxMessage
from winback.warehouse.source import SourceMapping, SourceTables

SRC = SourceTables(SourceMapping())
COMPLAINED = dt.datetime(2026, 9, 28, 12, 0, tzinfo=dt.UTC)  # daytime in London: sent at once
CLOSED = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
END_OF_2_DEC = dt.datetime(2026, 12, 3, 11, 59, 59, 999999, tzinfo=dt.UTC)  # 2 Dec is over in UTC-12
REFUND_POLICY = """
tiers: {medium: 60, high: 250}
caps: {max_share_of_order: 1.0, max_share_of_customer_value: 1.0}
rules:
  - {segment: aggrieved, offer: {kind: refund_share, value: 20}}
"""


@pytest.fixture
def customer(demo_engine: Engine) -> str:
    return reachable_london_customer(demo_engine, locale="en_GB")


@pytest.fixture
def compensating(settings: Settings, sink: SinkChannel) -> RecoverySetup:
    """Every aggrieved customer compensated: no random control, and compensation that pays on any value.

    These tests are about the code a message carries, not about who is worth compensating.
    """
    setup = RecoverySetup.from_settings(settings, channels={"email": sink, "sms": sink})
    config = setup.config
    lifts = {kind: (lift if kind == "none" else 0.5) for kind, lift in config.economics.lift_prior.items()}
    economics = config.economics.model_copy(update={"lift_prior": lifts})
    return replace(setup, config=config.model_copy(update={"holdout_share": 0.0, "economics": economics}))


def receive(engine: Engine, event_id: str, customer: str, type_: str, **kw: Any) -> str:
    """`test_recovery.receive`, for a double charge: `occurred` may be long before `received`."""
    return recovery_tests.receive(engine, event_id, customer, type_, description="Charged twice", **kw)


def sent(engine: Engine, sink: SinkChannel, step: str) -> str:
    """The text the sink recorded for the journey's `step` (the follow-up may have gone out in between)."""
    with engine.connect() as conn:
        message_id = conn.execute(select(OutboxMessage.id).where(OutboxMessage.step == step)).scalar_one()
    return next(str(r["text"]) for r in sink.records() if r["message_id"] == message_id)


def the_offer(engine: Engine) -> Row[Any]:
    """The one code issued (each test has one journey)."""
    with engine.connect() as conn:
        return conn.execute(select(Offer.__table__)).one()


def expiry(engine: Engine) -> dt.datetime:
    """The one code's expires_at, aware UTC on either database."""
    with engine.connect() as conn:
        value = conn.execute(select(Offer.expires_at)).scalar_one()
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def test_a_refund_states_its_money_not_its_percentage(
    demo_engine: Engine, customer: str, compensating: RecoverySetup, sink: SinkChannel
) -> None:
    """(Was a bug: a 20 % refund of a €1.54 order was worded "a refund of €20.00"; decided and coded €0.31.)"""
    with demo_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO orders (order_id, customer_id, ordered_at, amount) VALUES ('O-77', :c, :t, 1.54)"),
            {"c": customer, "t": (CLOSED - dt.timedelta(days=3)).replace(tzinfo=None)},
        )
    receive(demo_engine, "E1", customer, "complaint.created", severity=5, occurred=CLOSED, received=CLOSED)
    policy = CompensationPolicy.from_text(REFUND_POLICY)
    result = recover(demo_engine, demo_engine, SRC, "E1", CLOSED, replace(compensating, policy=policy))
    assert result["action"] == "contact", result["reason"]
    with demo_engine.connect() as conn:
        decided = conn.execute(select(Decision.offer_kind, Decision.offer_cost)).one()
        context = conn.execute(select(OutboxMessage.context).where(OutboxMessage.step == "apology")).scalar_one()
    assert (decided.offer_kind, float(decided.offer_cost)) == ("refund_share", 0.31), result["reason"]
    offer = the_offer(demo_engine)
    assert (offer.kind, float(offer.value), float(offer.expected_cost)) == ("refund_share", 20.0, 0.31)
    assert context["offer_amount"] == 0.31
    apology = sent(demo_engine, sink, "apology").replace("\xa0", " ")
    assert "a refund of €0.31" in apology
    assert "€20.00" not in apology


def test_a_late_event_gets_a_code_valid_from_when_it_is_processed(
    demo_engine: Engine, customer: str, compensating: RecoverySetup, sink: SinkChannel
) -> None:
    """(Was a bug: a complaint of 28 Sep posted on 2 Nov got a code dated from 28 Sep: "use it by 28 Oct".)"""
    receive(demo_engine, "E1", customer, "complaint.created", severity=5, occurred=COMPLAINED, received=CLOSED)
    recover(demo_engine, demo_engine, SRC, "E1", CLOSED, compensating)
    offer = the_offer(demo_engine)
    assert offer.issued_at.replace(tzinfo=None) == CLOSED.replace(tzinfo=None)
    assert expiry(demo_engine) == END_OF_2_DEC
    apology = sent(demo_engine, sink, "apology")
    assert offer.code in apology and "by 2 Dec 2026" in apology and "28 Oct" not in apology


def test_the_resolved_message_weeks_later_extends_the_code_it_carries(
    demo_engine: Engine, customer: str, compensating: RecoverySetup, sink: SinkChannel
) -> None:
    """(Was a bug: complaint 28 Sep, ticket closed 2 Nov: the "resolved" email said "use code … by 28 Oct".)"""
    receive(demo_engine, "E1", customer, "complaint.created", severity=3, occurred=COMPLAINED, received=COMPLAINED)
    recover(demo_engine, demo_engine, SRC, "E1", COMPLAINED, compensating)
    assert expiry(demo_engine) == dt.datetime(2026, 10, 29, 11, 59, 59, 999999, tzinfo=dt.UTC)  # end of 28 Oct
    receive(demo_engine, "E2", customer, "ticket.closed", severity=3, occurred=CLOSED, received=CLOSED)
    result = recover(demo_engine, demo_engine, SRC, "E2", CLOSED, compensating)
    assert result["offer_expiry_extended_to"] == END_OF_2_DEC.isoformat()
    assert expiry(demo_engine) == END_OF_2_DEC
    offer = the_offer(demo_engine)
    assert offer.issued_at.replace(tzinfo=None) == COMPLAINED.replace(tzinfo=None)  # the same code, only extended
    resolved = sent(demo_engine, sink, "resolved")
    assert offer.code in resolved and "by 2 Dec 2026" in resolved and "28 Oct" not in resolved


def test_a_code_valid_long_enough_is_never_shortened(
    demo_engine: Engine, customer: str, compensating: RecoverySetup, sink: SinkChannel
) -> None:
    receive(demo_engine, "E1", customer, "complaint.created", severity=3, occurred=COMPLAINED, received=COMPLAINED)
    recover(demo_engine, demo_engine, SRC, "E1", COMPLAINED, compensating)
    later = dt.datetime(2027, 3, 1, 11, 59, 59, 999999, tzinfo=dt.UTC)
    with demo_engine.begin() as conn:
        conn.execute(update(Offer).values(expires_at=later))  # e.g. extended by hand for a goodwill gesture
    receive(demo_engine, "E2", customer, "ticket.closed", severity=3, occurred=CLOSED, received=CLOSED)
    result = recover(demo_engine, demo_engine, SRC, "E2", CLOSED, compensating)
    assert "offer_expiry_extended_to" not in result
    assert expiry(demo_engine) == later
    assert "by 28 Feb 2027" in sent(demo_engine, sink, "resolved")
