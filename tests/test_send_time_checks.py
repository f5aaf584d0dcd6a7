"""What changed about a customer after their message was queued is honoured when it is sent.

A message waits in the outbox for hours (quiet hours) or days (journey follow-ups, retries). Each claim is
checked against the business's customers and consents tables as they are then, in one lookup per claim
(warehouse.queries.send_time_flags): a customer erased, flagged do-not-contact or fraud, or whose consent
for the message's channel is withdrawn is skipped with that reason, without calling the channel.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import AS_OF, LINKS, local_source
from crash_sender import queue_messages
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.orm import Session

from winback.channels.outcomes import OutgoingMessage, SendOutcome, Sent
from winback.config import CampaignConfig
from winback.delivery.dispatch import SourceTablesMissing, send_due, send_time_source
from winback.messages.compose import plan_rows
from winback.settings import Settings
from winback.stages import campaign as stages
from winback.warehouse import outbox
from winback.warehouse.models import OutboxMessage
from winback.warehouse.queries import send_time_flags
from winback.warehouse.source import SourceMapping, SourceTables
from winback.warehouse.source_models import DemoConsent, DemoCustomer, SourceBase
from winback.warehouse.timeutil import utc

SRC = SourceTables(SourceMapping())
EXAMPLE_MAPPING = Path(__file__).resolve().parents[1] / "examples" / "source-mapping.yaml"
EVENING = dt.datetime(2026, 11, 2, 20, 30, tzinfo=dt.UTC)  # 21:30 in Berlin: quiet hours there
MORNING = dt.datetime(2026, 11, 3, 7, 0, tzinfo=dt.UTC)  # 08:00 in Berlin


class Recorder:
    """A channel that accepts everything and remembers who it was asked to reach."""

    name = "recorder"
    rate_limited = False

    def __init__(self) -> None:
        self.customers: list[str] = []

    def send(self, message: OutgoingMessage) -> SendOutcome:
        self.customers.append(message.customer_id)
        return Sent(self.name, f"rec-{message.message_id}")


@pytest.fixture
def shop(engine: Engine) -> Engine:
    """`engine` with the demo's (empty) customers and consents tables beside the outbox."""
    SourceBase.metadata.create_all(engine, tables=[DemoCustomer.__table__, DemoConsent.__table__])
    return engine


def person(customer_id: str, zone: str | None = "Europe/Berlin", **overrides: Any) -> dict[str, Any]:
    """A customer record with both addresses and both consents granted; `overrides` change any field."""
    return {
        "customer_id": customer_id, "first_name": "Ada", "email": f"{customer_id.lower()}@example.com",
        "phone": "+4915112345678", "locale": "de_DE", "time_zone": zone, "preferred_channel": "email",
        "do_not_contact": False, "fraud_flag": False, "consents": {"email": True, "sms": True}, **overrides,
    }  # fmt: skip


def add_customers(engine: Engine, people: list[dict[str, Any]]) -> None:
    """Insert customers and their consent rows into the demo-shaped source tables."""
    customers = [{k: v for k, v in p.items() if k != "consents"} | {"signed_up_at": AS_OF} for p in people]
    consents = [
        {"customer_id": p["customer_id"], "channel": ch, "granted": ok, "source": "signup", "recorded_at": AS_OF}
        for p in people
        for ch, ok in p["consents"].items()
    ]
    with engine.begin() as conn:
        conn.execute(insert(DemoCustomer.__table__), customers)
        if consents:
            conn.execute(insert(DemoConsent.__table__), consents)


def queue_planned(
    engine: Engine,
    people: list[dict[str, Any]],
    now: dt.datetime,
    channels: dict[str, str] | None = None,
    campaign_id: str = "send-time",
    quiet: tuple[int, int] = (21, 8),
) -> stages.RunHandle:
    """Queue one `winback` message per person through `plan_rows`, as a campaign does; email unless `channels`
    names another channel for a customer."""
    with Session(engine) as session, session.begin():
        run = stages.start_run(session, CampaignConfig(campaign_id=campaign_id), now)
    frame = pd.DataFrame(
        [
            {key: p.get(key) for key in ("customer_id", "email", "phone", "locale", "time_zone", "first_name")}
            | {"segment": "lapsed", "channel": (channels or {}).get(p["customer_id"], "email")}
            for p in people
        ]
    )
    rows = plan_rows(frame, run.run_id, now, quiet_start_hour=quiet[0], quiet_end_hour=quiet[1])
    with engine.begin() as conn:
        outbox.enqueue(conn, rows)
    return run


def outbox_rows(engine: Engine, run_id: int) -> dict[str, dict[str, Any]]:
    """The run's rows by customer id, `not_before` made aware (SQLite hands back naive UTC)."""
    table = OutboxMessage.__table__
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(table).where(table.c.run_id == run_id)).mappings()]
    return {r["customer_id"]: {**r, "not_before": utc(r["not_before"])} for r in rows}


def outcomes(engine: Engine, run_id: int) -> dict[str, tuple[str, str | None]]:
    return {c: (r["status"], r["last_error"]) for c, r in outbox_rows(engine, run_id).items()}


# -- the reported defect ----------------------------------------------------------------------------------------
def test_changes_made_while_a_message_waited_for_the_morning_are_honoured(shop: Engine) -> None:
    """Queued at 21:30 Berlin time, held for quiet hours; overnight consent is withdrawn, flags are set and one
    customer is erased. The morning send reaches only those still reachable on the message's channel."""
    people = [
        person("C1"),
        person("C2", consents={"email": False, "sms": True}),
        person("C3", do_not_contact=True),
        person("C4", fraud_flag=True),
        person("C5"),
        person("C6", consents={"email": True, "sms": False}),  # messaged by SMS below
        person("C7", consents={"email": False, "sms": True}),  # messaged by SMS below
    ]
    add_customers(shop, [person(p["customer_id"]) for p in people])  # at queueing, everyone may be contacted
    run = queue_planned(shop, people, EVENING, channels={"C6": "sms", "C7": "sms"})
    assert {r["not_before"] for r in outbox_rows(shop, run.run_id).values()} == {MORNING}
    with shop.begin() as conn:  # overnight, in the business's own tables
        for p in people:
            conn.execute(
                update(DemoCustomer.__table__)
                .where(DemoCustomer.customer_id == p["customer_id"])
                .values(do_not_contact=p["do_not_contact"], fraud_flag=p["fraud_flag"])
            )
            for channel, granted in p["consents"].items():
                conn.execute(
                    update(DemoConsent.__table__)
                    .where(DemoConsent.customer_id == p["customer_id"], DemoConsent.channel == channel)
                    .values(granted=granted)
                )
        conn.execute(delete(DemoConsent.__table__).where(DemoConsent.customer_id == "C5"))
        conn.execute(delete(DemoCustomer.__table__).where(DemoCustomer.customer_id == "C5"))

    channel = Recorder()
    report = send_due(shop, {"email": channel, "sms": channel}, run_id=run.run_id, now=MORNING, source=SRC, links=LINKS)

    assert report.as_dict() == {"sent": 2, "skipped": 5}
    assert sorted(channel.customers) == ["C1", "C7"]
    assert outcomes(shop, run.run_id) == {
        "C1": ("sent", None),
        "C2": ("skipped", "consent withdrawn at send time"),
        "C3": ("skipped", "do-not-contact at send time"),
        "C4": ("skipped", "fraud flag at send time"),
        "C5": ("skipped", "customer erased: not in the customers table at send time"),
        "C6": ("skipped", "consent withdrawn at send time"),
        "C7": ("sent", None),
    }


def test_a_follow_up_due_days_later_is_checked_against_the_record_then(shop: Engine) -> None:
    """Rows queued without a stored zone (before zones were stored, or by hand) are checked all the same."""
    add_customers(shop, [person("C1"), person("C2"), person("C3", consents={})])
    later = AS_OF + dt.timedelta(days=7)
    run = queue_messages(shop, [(c, "email", f"{c.lower()}@example.com") for c in ("C1", "C2", "C3")], later)
    with shop.begin() as conn:
        conn.execute(update(DemoCustomer.__table__).where(DemoCustomer.customer_id == "C2").values(do_not_contact=True))
    channel = Recorder()
    send_due(shop, {"email": channel, "sms": channel}, now=later, source=SRC, links=LINKS)
    assert channel.customers == ["C1"]
    assert outcomes(shop, run.run_id) == {
        "C1": ("sent", None),
        "C2": ("skipped", "do-not-contact at send time"),
        "C3": ("skipped", "consent withdrawn at send time"),  # no consent row at all: no consent
    }


def test_winbacks_own_opt_outs_still_apply_and_the_business_record_comes_first(shop: Engine) -> None:
    from winback.warehouse.suppressions import suppress

    add_customers(shop, [person("C1"), person("C2", do_not_contact=True)])
    run = queue_messages(shop, [("C1", "email", "c1@example.com"), ("C2", "email", "c2@example.com")], AS_OF)
    with shop.begin() as conn:
        suppress(conn, "C1", "email", "unsubscribe", "sendgrid webhook", AS_OF)
        suppress(conn, "C2", "email", "unsubscribe", "sendgrid webhook", AS_OF)
    channel = Recorder()
    send_due(shop, {"email": channel, "sms": channel}, now=AS_OF, source=SRC, links=LINKS)
    assert channel.customers == []
    assert outcomes(shop, run.run_id) == {
        "C1": ("skipped", "suppressed at send time"),
        "C2": ("skipped", "do-not-contact at send time"),
    }


def edge_source(engine: Engine) -> SourceTables | None:
    """The send-time source as the flows build it: from the settings read now (`SourceTables.from_settings`)."""
    return send_time_source(engine, SourceTables.from_settings(Settings()))


# -- where the source comes from ---------------------------------------------------------------------------------
def test_the_mapping_winback_source_mapping_names_is_read_at_the_edge(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Helper sender processes and the hourly dispatch build their source from the settings, like this."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE crm_clients (client_ref VARCHAR(64), dnc BOOLEAN, chargeback_flag BOOLEAN)"))
        conn.execute(text("CREATE TABLE permissions (client_ref VARCHAR(64), channel VARCHAR(8), opted_in BOOLEAN)"))
        conn.execute(text("INSERT INTO crm_clients VALUES ('K1', false, false), ('K2', false, false)"))
        conn.execute(text("INSERT INTO permissions VALUES ('K1', 'email', true), ('K2', 'email', false)"))
    monkeypatch.setenv("WINBACK_SOURCE_MAPPING", str(EXAMPLE_MAPPING))
    run = queue_messages(engine, [("K1", "email", "k1@example.com"), ("K2", "email", "k2@example.com")], AS_OF)
    channel = Recorder()
    send_due(engine, {"email": channel, "sms": channel}, now=AS_OF, source=edge_source(engine), links=LINKS)
    assert outcomes(engine, run.run_id) == {"K1": ("sent", None), "K2": ("skipped", "consent withdrawn at send time")}


def test_a_configured_mapping_whose_tables_are_missing_claims_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINBACK_SOURCE_MAPPING", str(EXAMPLE_MAPPING))
    run = queue_messages(engine, [("K1", "email", "k1@example.com")], AS_OF)
    channel = Recorder()
    with pytest.raises(SourceTablesMissing, match="crm_clients, permissions"):
        send_due(engine, {"email": channel, "sms": channel}, now=AS_OF, source=edge_source(engine), links=LINKS)
    row = outbox_rows(engine, run.run_id)["K1"]
    assert (row["status"], row["attempts"], channel.customers) == ("queued", 0, [])


def test_a_database_holding_only_an_outbox_checks_winbacks_opt_outs_alone(engine: Engine) -> None:
    """No customers or consents table and no mapping configured: nothing to re-check against (logged once)."""
    run = queue_messages(engine, [("C1", "email", "c1@example.com")], AS_OF)
    channel = Recorder()
    assert send_due(
        engine, {"email": channel, "sms": channel}, now=AS_OF, source=local_source(engine), links=LINKS
    ).as_dict() == {"sent": 1}
    assert outcomes(engine, run.run_id) == {"C1": ("sent", None)}


def test_consents_mapped_to_a_view_are_read(shop: Engine) -> None:
    """A business with a consent history maps a view of each customer's latest consent (see reachability)."""
    from winback.warehouse.source import ConsentsSource

    add_customers(shop, [person("C1"), person("C2", consents={"email": False})])
    with shop.begin() as conn:
        conn.execute(text("CREATE VIEW latest_consents AS SELECT * FROM consents"))
    source = SourceTables(SourceMapping(consents=ConsentsSource(table="latest_consents")))
    run = queue_messages(shop, [("C1", "email", "c1@example.com"), ("C2", "email", "c2@example.com")], AS_OF)
    channel = Recorder()
    send_due(shop, {"email": channel, "sms": channel}, now=AS_OF, source=source, links=LINKS)
    assert outcomes(shop, run.run_id) == {"C1": ("sent", None), "C2": ("skipped", "consent withdrawn at send time")}


def test_a_send_time_check_that_fails_gives_the_claim_back(shop: Engine) -> None:
    """Left `sending`, a provider's rows would become `unknown` at reconcile and never go."""
    add_customers(shop, [person("C1"), person("C2")])
    run = queue_messages(shop, [("C1", "email", "c1@example.com"), ("C2", "email", "c2@example.com")], AS_OF)

    def broken_check(rows: list[dict]) -> dict[str, str]:
        raise RuntimeError("orders table unreachable")

    channel = Recorder()
    with pytest.raises(RuntimeError, match="unreachable"):
        send_due(shop, {"email": channel, "sms": channel}, now=AS_OF, source=SRC, stop_check=broken_check, links=LINKS)
    rows = outbox_rows(shop, run.run_id)
    assert {c: (r["status"], r["attempts"], r["not_before"]) for c, r in rows.items()} == {
        "C1": ("queued", 0, AS_OF),
        "C2": ("queued", 0, AS_OF),
    }
    assert send_due(shop, {"email": channel, "sms": channel}, now=AS_OF, source=SRC, links=LINKS).as_dict() == {
        "sent": 2
    }


# -- the lookup itself -------------------------------------------------------------------------------------------
def test_send_time_flags_reads_flags_and_consents_per_channel(shop: Engine) -> None:
    add_customers(
        shop,
        [
            person("C1"),
            person("C2", do_not_contact=True, fraud_flag=True, consents={"email": False, "sms": True}),
            person("C3", consents={}),
        ],
    )
    with shop.connect() as conn:
        flags = send_time_flags(conn, SRC, ["C1", "C2", "C3", "ERASED"])
    assert flags.found == {"C1", "C2", "C3"}
    assert (flags.do_not_contact, flags.fraud_flag) == ({"C2"}, {"C2"})
    assert flags.granted == {("C1", "email"), ("C1", "sms"), ("C2", "sms")}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_send_time_flags_grants_a_channel_only_when_every_row_for_it_does(engine: Engine) -> None:
    """A consent history mapped by mistake (several rows per customer and channel) must not resurrect consent."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (customer_id TEXT, do_not_contact BOOLEAN, fraud_flag BOOLEAN)"))
        conn.execute(text("CREATE TABLE consents (customer_id TEXT, channel TEXT, granted BOOLEAN)"))
        conn.execute(text("INSERT INTO customers VALUES ('C1', 0, 0)"))
        conn.execute(text("INSERT INTO consents VALUES ('C1', 'email', 1), ('C1', 'email', 0), ('C1', 'sms', 1)"))
    with engine.connect() as conn:
        assert send_time_flags(conn, SRC, ["C1"]).granted == {("C1", "sms")}
