"""`unknown` messages: only the calls in flight can become one, and each is settled or shown to an operator.

In-process and deterministic (the kill -9 runs are in tests/test_dispatch_crash.py and _senders.py): a channel
wrapper raises where a crash would strike, after the provider got the message (`AnswerLost`) or before it
did (`LostBeforeCall`), which leaves the row started and `sending`, as a kill would. Then:
- each row's start is committed before its own call, and no more rows are started than calls in flight;
- Twilio: a lookup through the SDK finds a message the provider has (`sent`, with its SID); one it never
  got is re-queued once the visibility delay has passed, and only once; other messages to the number make
  absence unprovable;
- SendGrid: a signed Event Webhook event settles the row it names; the rest are listed for an operator after
  the wait, never resent silently;
- `winback outbox unknown` lists them (masked), `winback outbox resend --unknown` re-queues only with --yes,
  each move in the outbox history; the report notes them; rows `sending` before migration 0003 stay unknown.
SQLite and PostgreSQL (the `engine` fixture), SDKs to the stand-ins.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import AS_OF, LINKS, local_source
from crash_harness import NOW, post_signed_sendgrid_events, sendgrid_event
from crash_sender import outbox_row, queue_messages
from sqlalchemy import Engine, func, insert, select
from standins import compiled_validator, pointer, sendgrid_api, twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TWILIO_SPEC, TwilioStandin, running_twilio_standin

from winback.app.cli import main
from winback.channels.outcomes import Sent
from winback.channels.sendgrid import SendGridChannel
from winback.channels.twilio import TwilioChannel
from winback.delivery.dispatch import SendCrashed, SendLimits, reconcile, send_due
from winback.delivery.settle import UnknownPolicy
from winback.messages.redact import mask_email
from winback.reports.build import delivery_funnel, unknown_notes
from winback.warehouse import outbox_unknown
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade
from winback.warehouse.models import Campaign, CampaignRun, OutboxMessage

sendgrid_standin = sendgrid_api.sendgrid_standin
twilio_standin = twilio_api.twilio_standin

DECIDE_NOW = UnknownPolicy(lookup_visibility_seconds=0, operator_wait_seconds=0)
FAST = SendLimits(email_per_second=1000, sms_per_second=1000, concurrency=4)


class Crashing:
    """A provider channel that dies mid-call: after the provider got the message for addresses in `reached`
    (its answer lost), before it did for the others. Everything else is the wrapped channel's."""

    def __init__(self, channel, reached: set[str] = frozenset()) -> None:  # type: ignore[no-untyped-def,assignment]
        self.channel, self.reached = channel, reached

    def send(self, message):  # type: ignore[no-untyped-def]
        if message.to in self.reached:
            self.channel.send(message)
            raise ConnectionResetError("connection reset before the provider's answer")
        raise ConnectionResetError("killed before the request left")

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.channel, name)


def rows_of(engine: Engine, run_id: int) -> dict[str, dict]:
    """The run's rows by customer id."""
    table = OutboxMessage.__table__
    with engine.connect() as conn:
        found = conn.execute(select(table).where(table.c.run_id == run_id)).mappings()
        return {r["customer_id"]: dict(r) for r in found}


def moves(engine: Engine, mid: str) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [(h["from_status"], h["to_status"], h["actor"]) for h in outbox_unknown.history(conn, [mid])]


def crash(engine: Engine, channels: dict, run_id: int) -> None:  # type: ignore[type-arg]
    with pytest.raises(SendCrashed):
        send_due(engine, channels, run_id=run_id, now=NOW, limits=FAST, source=local_source(engine), links=LINKS)


# -- only the calls in flight are started ---------------------------------------------------------------------
class Probe:
    """A provider-like channel that, at each call, reads what the outbox says about started rows."""

    rate_limited = True

    def __init__(self, engine: Engine) -> None:
        self.engine, self.in_flight, self.own_start_committed = engine, [], []

    def send(self, message):  # type: ignore[no-untyped-def]
        table = OutboxMessage.__table__
        started = (table.c.status == "sending") & table.c.started_at.is_not(None)
        with self.engine.connect() as conn:
            self.in_flight.append(conn.execute(select(func.count()).where(started)).scalar_one())
            own = conn.execute(select(table.c.started_at).where(table.c.id == message.message_id)).scalar_one()
        self.own_start_committed.append(own is not None)
        return Sent("probe", f"p-{message.message_id}")


def test_each_call_is_started_first_and_no_more_than_the_calls_in_flight(engine: Engine) -> None:
    run = queue_messages(engine, [(f"C{i:03d}", "email", f"c{i}@example.com") for i in range(60)], AS_OF)
    probe = Probe(engine)
    report = send_due(
        engine,
        {"email": probe, "sms": probe},
        run_id=run.run_id,
        now=NOW,
        limits=FAST,
        claim_size=25,
        source=local_source(engine),
        links=LINKS,
    )
    assert report.counts["sent"] == 60
    assert all(probe.own_start_committed), "a call began before its row's start was committed"
    assert 0 < max(probe.in_flight) <= FAST.concurrency, probe.in_flight


# -- Twilio: settled by a lookup ------------------------------------------------------------------------------
def test_a_twilio_unknown_the_list_shows_is_settled_as_sent_with_its_sid(
    engine: Engine, twilio_standin: TwilioStandin
) -> None:
    tw = twilio_standin
    numbers = ["+447911000101", "+447911000102"]
    run = queue_messages(engine, [(f"S{i}", "sms", n) for i, n in enumerate(numbers)], AS_OF)
    crash(engine, {"sms": Crashing(TwilioChannel(tw.settings()), set(numbers))}, run.run_id)
    assert len(tw.accepted) == 2

    settled = reconcile(engine, {"sms": TwilioChannel(tw.settings())}, run.run_id, policy=DECIDE_NOW)
    assert settled == {"unknown": 2, "sent_by_lookup": 2}
    sids = {e.fields()["To"]: e.response_json()["sid"] for e in tw.accepted}
    rows = rows_of(engine, run.run_id)
    assert {r["to_address"]: (r["status"], r["provider_message_id"]) for r in rows.values()} == {
        n: ("sent", sids[n]) for n in numbers
    }
    assert moves(engine, rows["S0"]["id"]) == [
        ("sending", "unknown", "reconcile"),
        ("unknown", "sent", "twilio lookup"),
    ]
    assert len(tw.creates) == 2, "a lookup never sends"
    query = tw.lookups[0].request.query
    assert "To=%2B447911000101" in query and "From=" in query and "DateSent%3E=" in query


def test_a_twilio_unknown_never_sent_is_requeued_once_after_the_visibility_delay(
    engine: Engine, twilio_standin: TwilioStandin
) -> None:
    tw = twilio_standin
    run = queue_messages(engine, [("S1", "sms", "+447911000201")], AS_OF)
    lost = Crashing(TwilioChannel(tw.settings()))
    crash(engine, {"sms": lost}, run.run_id)
    channels = {"sms": TwilioChannel(tw.settings())}

    patient = UnknownPolicy(lookup_visibility_seconds=3600, operator_wait_seconds=86400)
    assert reconcile(engine, channels, run.run_id, policy=patient) == {"unknown": 1, "lookup_undecided": 1}
    assert rows_of(engine, run.run_id)["S1"]["status"] == "unknown", "absent, but Twilio may not list it yet"

    assert reconcile(engine, channels, run.run_id, policy=DECIDE_NOW) == {"requeued_by_lookup": 1}
    row = rows_of(engine, run.run_id)["S1"]
    assert row["status"] == "queued" and "re-queued once" in row["last_error"]

    crash(engine, {"sms": lost}, run.run_id)  # the re-send is lost too: no second automatic re-queue
    settled = reconcile(engine, channels, run.run_id, policy=DECIDE_NOW)
    assert settled == {"unknown": 1, "lookup_undecided": 1, "unknown_for_operator": 1}
    assert moves(engine, row["id"]).count(("unknown", "queued", "twilio lookup")) == 1
    assert (
        send_due(
            engine, channels, run_id=run.run_id, now=NOW, limits=FAST, source=local_source(engine), links=LINKS
        ).as_dict()
        == {}
    )
    assert tw.creates == [], "an unknown message is never sent again without a decision"

    assert reconcile(engine, channels, run.run_id, policy=DECIDE_NOW).get("requeued_by_lookup", 0) == 0
    with engine.begin() as conn:  # an operator decides: sent once, at last
        outbox_unknown.requeue_unknown(conn, [row["id"]], NOW, "operator", "test")
    assert send_due(
        engine, channels, run_id=run.run_id, now=NOW, limits=FAST, source=local_source(engine), links=LINKS
    ).as_dict() == {"sent": 1}
    assert len(tw.accepted) == 1


def test_other_messages_to_the_number_make_absence_unprovable(engine: Engine, twilio_standin: TwilioStandin) -> None:
    tw = twilio_standin
    run = queue_messages(engine, [("S1", "sms", "+447911000301")], AS_OF)
    crash(engine, {"sms": Crashing(TwilioChannel(tw.settings()))}, run.run_id)
    from winback.channels.outcomes import OutgoingMessage

    other = OutgoingMessage(message_id="other", channel="sms", to="+447911000301", text="Your order has shipped")
    TwilioChannel(tw.settings()).send(other)
    settled = reconcile(engine, {"sms": TwilioChannel(tw.settings())}, run.run_id, policy=DECIDE_NOW)
    assert settled.get("lookup_undecided") == 1 and "requeued_by_lookup" not in settled
    assert rows_of(engine, run.run_id)["S1"]["status"] == "unknown"


@pytest.mark.parametrize("validator", ["jsonschema", "openapi-core"])
def test_the_stand_in_lists_messages_as_the_description_says(validator: str) -> None:
    twilio_api.require_specs()
    with running_twilio_standin(validator=validator) as tw:  # type: ignore[arg-type]
        channel = TwilioChannel(tw.settings())
        from winback.channels.outcomes import OutgoingMessage

        for i in range(3):
            channel.send(OutgoingMessage(message_id=f"m{i}", channel="sms", to="+447911000401", text=f"hello {i}"))
        url = f"{tw.url}/2010-04-01/Accounts/{tw.account_sid}/Messages.json"
        auth = (tw.account_sid, tw.auth_token)
        page = requests.get(url, params={"To": "+447911000401", "PageSize": 2}, auth=auth, timeout=5)
        assert page.status_code == 200
        body = page.json()
        assert [m["body"] for m in body["messages"]] == ["hello 2", "hello 1"] and body["next_page_uri"]
        where = pointer("paths", "/2010-04-01/Accounts/{AccountSid}/Messages.json", "get", "responses", "200",
                        "content", "application/json", "schema")  # fmt: skip
        errors = compiled_validator(TWILIO_SPEC, where).iter_errors(body)
        # the page URIs are relative, as the real API's and the description's own example: not "uri" format
        assert [e.message for e in errors if not (e.validator == "format" and str(e.instance).startswith("/"))] == []
        refused = requests.get(url, params={"PageSize": 5000}, auth=auth, timeout=5)
        assert refused.status_code == 400 and refused.json()["code"] == 20001
        assert requests.get(url, auth=(tw.account_sid, "wrong" * 6), timeout=5).status_code == 401
        since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        assert channel.find_sent("+447911000401", "hello 0", since).sid == tw.accepted[0].response_json()["sid"]


# -- SendGrid: settled by a signed event, the rest listed -----------------------------------------------------
def test_a_sendgrid_unknown_is_settled_by_a_signed_event_and_the_rest_listed(
    engine: Engine, sendgrid_standin: SendGridStandin
) -> None:
    sg = sendgrid_standin
    run = queue_messages(engine, [("E1", "email", "ann@example.com"), ("E2", "email", "bob@example.com")], AS_OF)
    crash(engine, {"email": Crashing(SendGridChannel(sg.settings()), {"ann@example.com"})}, run.run_id)
    channels = {"email": SendGridChannel(sg.settings())}
    patient = UnknownPolicy()  # 24 h for an event before an operator is asked
    assert reconcile(engine, channels, run.run_id, policy=patient) == {"unknown": 2}

    rows = rows_of(engine, run.run_id)
    [accepted] = sg.accepted
    event = sendgrid_event(rows["E1"]["id"], accepted.response.headers["X-Message-Id"], 1)
    assert post_signed_sendgrid_events(engine, [event])["reconciled"] == 1
    assert rows_of(engine, run.run_id)["E1"]["status"] == "sent"

    assert reconcile(engine, channels, run.run_id, policy=DECIDE_NOW) == {"unknown_for_operator": 1}
    with engine.connect() as conn:
        assert [r["customer_id"] for r in outbox_unknown.unknown_rows(conn, run.run_id)] == ["E2"]
    assert (
        send_due(
            engine, channels, run_id=run.run_id, now=NOW, limits=FAST, source=local_source(engine), links=LINKS
        ).as_dict()
        == {}
    )
    assert len(sg.received) == 1, "never resent silently"


# -- operators -------------------------------------------------------------------------------------------------
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["winback", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), " ".join(capsys.readouterr().out.split())


@pytest.fixture
def cli_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("WINBACK_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("COLUMNS", "200")
    yield engine


def test_operators_list_unknown_messages_and_requeue_them_only_with_yes(
    cli_env: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = cli_env
    run = queue_messages(engine, [("E1", "email", "ann.lee@example.com"), ("E2", "email", "bo@example.com")], AS_OF)
    crash(engine, {"email": Crashing(object())}, run.run_id)
    reconcile(engine, None, run.run_id, policy=UnknownPolicy())

    code, out = run_cli(monkeypatch, capsys, "outbox", "unknown", "--run-id", str(run.run_id))
    assert code == 0
    assert mask_email("ann.lee@example.com") in out and "ann.lee@" not in out
    assert "dispatch-test" in out and "email" in out and "2 unknown message(s)" in out and " s " in out

    assert run_cli(monkeypatch, capsys, "outbox", "resend", "--unknown", "--older-than", "1h", "--yes") == (
        0, "no unknown message older than 1h")  # fmt: skip
    code, out = run_cli(monkeypatch, capsys, "outbox", "resend", "--unknown", "--older-than", "0s")
    assert code == 1 and "add --yes" in out
    assert set(r["status"] for r in rows_of(engine, run.run_id).values()) == {"unknown"}, "nothing without --yes"
    code, out = run_cli(monkeypatch, capsys, "outbox", "resend", "--older-than", "0s", "--yes")
    assert code == 2 and out == "error: say which messages to re-queue: --unknown"
    code, out = run_cli(monkeypatch, capsys, "outbox", "resend", "--unknown", "--older-than", "soon", "--yes")
    assert code == 2 and out.startswith("error: --older-than 'soon': give a number and a unit")

    code, out = run_cli(monkeypatch, capsys, "outbox", "resend", "--unknown", "--older-than", "0s", "--yes")
    assert code == 0 and out.startswith("re-queued 2 message(s)")
    rows = rows_of(engine, run.run_id)
    assert {r["status"] for r in rows.values()} == {"queued"}
    assert moves(engine, rows["E1"]["id"])[-1] == ("unknown", "queued", "operator")
    code, out = run_cli(monkeypatch, capsys, "outbox", "unknown")
    assert (code, out) == (0, "no unknown messages")


def test_the_report_notes_unknown_messages_and_counts_them_by_channel(engine: Engine) -> None:
    run = queue_messages(engine, [("E1", "email", "a@example.com"), ("S1", "sms", "+447911000501")], AS_OF)
    crash(engine, {"email": Crashing(object()), "sms": Crashing(object())}, run.run_id)
    reconcile(engine, None, run.run_id, policy=UnknownPolicy())
    with engine.connect() as conn:
        delivery = delivery_funnel(conn, run.run_id)
    assert delivery.set_index("channel")["unknown"].to_dict() == {"email": 1, "sms": 1}
    [note] = unknown_notes(delivery, run.run_id)
    assert note.startswith("2 message(s) of this run are unknown") and f"--run-id {run.run_id}" in note
    assert unknown_notes(delivery.assign(unknown=0), run.run_id) == []


# -- migration 0003 ----------------------------------------------------------------------------------------------
def test_rows_left_sending_before_0003_count_as_started_and_are_never_requeued(db_url: str, tmp_path: Path) -> None:
    """A sender of the old code killed before the upgrade left rows `sending` with no start mark: they may
    have left, so reconcile makes them `unknown` (as the old code did), not `queued`."""
    engine = make_engine(db_url)
    upgrade(db_url, revision="0002", engine=engine)
    with engine.begin() as conn:
        conn.execute(insert(Campaign.__table__).values(id="c", kind="winback", config={}, created_at=AS_OF))
        run = {"campaign_id": "c", "as_of": AS_OF, "status": "sent", "started_at": AS_OF, "stats": {}}
        run_id = conn.execute(insert(CampaignRun.__table__).values(**run)).inserted_primary_key[0]
        row = outbox_row(run_id, "C1", "email", "c1@example.com", AS_OF)
        claimed = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)  # past the lease: its sender is gone
        row |= {"status": "sending", "attempts": 1, "claimed_by": "gone-host:1:x", "claimed_at": claimed}
        conn.execute(insert(OutboxMessage.__table__), [row])  # 0002's columns only
    upgrade(db_url, engine=engine)
    assert reconcile(engine, None, run_id, policy=UnknownPolicy()) == {"unknown": 1}
    engine.dispose()
