"""Quiet hours hold at send time too, and no time zone a profile can hold stops a campaign.

At queueing, `plan_rows` sets `not_before` to the recipient's next allowed moment and stores the zone and
the campaign's quiet hours in the row's context. A sender that claims the row at night where the recipient
is (a late hourly dispatch, a retry, a slow send) puts it back until their morning: status `queued`, no
attempt counted, reported as `held_quiet_hours`. Rows queued before zones were stored are sent as before.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import LINKS, local_source
from crash_sender import queue_messages
from sqlalchemy import Engine
from test_send_time_checks import Recorder, outbox_rows, queue_planned

from winback.delivery.dispatch import send_due
from winback.messages.compose import plan_rows
from winback.messages.quiet_hours import is_allowed_hour, next_allowed, send_window, send_window_context

UTC = dt.UTC


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def london(customer_id: str) -> dict:
    return {"customer_id": customer_id, "first_name": "Ada", "email": f"{customer_id.lower()}@example.com",
            "phone": "+447911123456", "locale": "en_GB", "time_zone": "Europe/London"}  # fmt: skip


def send(engine: Engine, now: dt.datetime, run_id: int | None = None) -> tuple[dict[str, int], list[str]]:
    """One send at `now` (no source tables here: quiet hours only); the report and who was reached."""
    channel = Recorder()
    report = send_due(
        engine, {"email": channel, "sms": channel}, run_id=run_id, now=now, source=local_source(engine), links=LINKS
    )
    return report.as_dict(), channel.customers


# -- zones a profile may hold ------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ["America", "Europe", "Etc", "Pacific Time", "", "  ", "../../etc/passwd"])
def test_a_zone_that_names_no_zone_falls_back_to_utc(zone: str) -> None:
    """Zones "America" and "Europe" are directories of the tz database: ZoneInfo raises IsADirectoryError."""
    assert next_allowed(_utc(2026, 11, 2, 22, 0), zone) == _utc(2026, 11, 3, 8, 0)
    assert next_allowed(_utc(2026, 11, 2, 12, 0), zone) == _utc(2026, 11, 2, 12, 0)


def test_plan_rows_queues_a_partition_holding_directory_zones() -> None:
    """(Was IsADirectoryError out of plan_rows: one "America" profile stopped the whole queueing.)"""
    frame = pd.DataFrame([
        {"customer_id": "C1", "segment": "lapsed", "channel": "email", "email": "c1@example.com", "phone": None,
         "locale": "en_US", "time_zone": "America", "first_name": "Al"},
        {"customer_id": "C2", "segment": "lapsed", "channel": "sms", "email": None, "phone": "(415) 555-0100",
         "locale": "en_US", "time_zone": "Europe", "first_name": "Bo"},
    ])  # fmt: skip
    now = _utc(2026, 11, 2, 10, 0)  # 10:00 UTC, 02:00 in Los Angeles
    rows = {r["customer_id"]: r for r in plan_rows(frame, 1, now)}
    assert rows["C1"]["not_before"] == now  # no zone anywhere: UTC
    assert rows["C1"]["context"]["time_zone"] is None
    assert rows["C2"]["not_before"] == _utc(2026, 11, 2, 16, 0)  # the phone's zone: 08:00 in Los Angeles
    assert rows["C2"]["context"]["time_zone"] == "America/Los_Angeles"


def test_plan_rows_stores_the_zone_and_the_campaigns_quiet_hours_with_each_row() -> None:
    frame = pd.DataFrame([london("C1") | {"segment": "lapsed", "channel": "email"}])
    (row,) = plan_rows(frame, 1, _utc(2026, 11, 2, 10, 0), quiet_start_hour=22, quiet_end_hour=7)
    assert row["context"]["time_zone"] == "Europe/London"
    assert row["context"]["quiet_hours"] == [22, 7]
    assert send_window(row["context"]) == ("Europe/London", 7, 22)


def test_send_window_of_rows_without_a_zone_and_of_malformed_quiet_hours() -> None:
    assert send_window({"first_name": "Ada"}) is None  # queued before zones were stored
    assert send_window({"time_zone": None}) == (None, 8, 21)
    assert send_window({"time_zone": "Europe/Paris", "quiet_hours": [25, "8"]}) == ("Europe/Paris", 8, 21)
    assert send_window(send_window_context("Asia/Tokyo", 20, 9)) == ("Asia/Tokyo", 9, 20)


@pytest.mark.parametrize(
    ("start", "end", "allowed"),
    [(8, 21, {*range(8, 21)}), (6, 0, {*range(6, 24)}), (22, 3, {22, 23, 0, 1, 2}), (8, 8, {*range(24)})],
    ids=["day", "until-midnight", "past-midnight", "no-quiet-hours"],
)
def test_allowed_windows_may_run_past_midnight(start: int, end: int, allowed: set[int]) -> None:
    """A campaign with quiet hours 0-6 allows 06:00-24:00; before, it was never allowed (held for good)."""
    assert {h for h in range(24) if is_allowed_hour(h, start, end)} == allowed
    for hour in range(24):
        now = _utc(2026, 11, 2, hour, 30)
        got = next_allowed(now, "UTC", start, end)
        assert got == now if hour in allowed else (got > now and is_allowed_hour(got.hour, start, end))
        assert got - now < dt.timedelta(days=1)


# -- at send time ------------------------------------------------------------------------------------------------
def test_a_message_due_before_quiet_hours_but_claimed_after_waits_for_the_morning(engine: Engine) -> None:
    """(Was sent at 21:05 London time: `due` has no local-time condition.)"""
    run = queue_planned(engine, [london("C1")], _utc(2026, 11, 2, 20, 40))
    assert outbox_rows(engine, run.run_id)["C1"]["not_before"] == _utc(2026, 11, 2, 20, 40)

    assert send(engine, _utc(2026, 11, 2, 21, 5)) == ({"held_quiet_hours": 1}, [])
    row = outbox_rows(engine, run.run_id)["C1"]
    assert (row["status"], row["attempts"], row["not_before"]) == ("queued", 0, _utc(2026, 11, 3, 8, 0))
    assert row["last_error"] is None
    assert send(engine, _utc(2026, 11, 3, 7, 59)) == ({}, [])  # not due before then

    assert send(engine, _utc(2026, 11, 3, 8, 0)) == ({"sent": 1}, ["C1"])
    assert outbox_rows(engine, run.run_id)["C1"]["attempts"] == 1


def test_only_the_recipients_at_night_wait(engine: Engine) -> None:
    """22:00 UTC: night in London and Berlin, the afternoon in Los Angeles; one claim, two answers."""
    los_angeles = london("C2") | {"time_zone": "America/Los_Angeles", "locale": "en_US"}
    berlin = london("C3") | {"time_zone": "Europe/Berlin", "locale": "de_DE"}
    run = queue_planned(engine, [london("C1"), los_angeles, berlin], _utc(2026, 11, 2, 18, 0))
    assert send(engine, _utc(2026, 11, 2, 22, 0)) == ({"held_quiet_hours": 2, "sent": 1}, ["C2"])
    rows = outbox_rows(engine, run.run_id)
    assert {c: (r["status"], r["not_before"]) for c, r in rows.items()} == {
        "C1": ("queued", _utc(2026, 11, 3, 8, 0)),
        "C2": ("sent", _utc(2026, 11, 2, 18, 0)),
        "C3": ("queued", _utc(2026, 11, 3, 7, 0)),
    }


def test_the_campaigns_own_quiet_hours_are_kept_at_send_time(engine: Engine) -> None:
    run = queue_planned(engine, [london("C1"), london("C2")], _utc(2026, 11, 2, 12, 0), quiet=(22, 7))
    assert send(engine, _utc(2026, 11, 2, 21, 30), run.run_id) == ({"sent": 2}, ["C1", "C2"])  # 21:30 < 22:00
    later = queue_planned(engine, [london("C3")], _utc(2026, 11, 3, 12, 0), quiet=(22, 7), campaign_id="later")
    assert send(engine, _utc(2026, 11, 4, 6, 30), later.run_id) == ({"held_quiet_hours": 1}, [])
    assert outbox_rows(engine, later.run_id)["C3"]["not_before"] == _utc(2026, 11, 4, 7, 0)


def test_an_unknown_zone_is_checked_as_utc(engine: Engine) -> None:
    run = queue_planned(engine, [london("C1") | {"time_zone": None, "phone": None}], _utc(2026, 11, 2, 12, 0))
    assert send(engine, _utc(2026, 11, 2, 22, 0)) == ({"held_quiet_hours": 1}, [])
    assert outbox_rows(engine, run.run_id)["C1"]["not_before"] == _utc(2026, 11, 3, 8, 0)


def test_rows_queued_before_zones_were_stored_are_sent_as_before(engine: Engine) -> None:
    """No zone in the context: no send-time check (their queue-time not_before already honoured quiet hours)."""
    queue_messages(engine, [("C1", "email", "c1@example.com")], _utc(2026, 11, 2, 12, 0))
    assert send(engine, _utc(2026, 11, 2, 23, 0)) == ({"sent": 1}, ["C1"])
