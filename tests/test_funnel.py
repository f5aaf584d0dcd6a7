"""The delivery funnel counts what providers reported, without double counts or inflated engagement."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert

from winback.messages.render import TEMPLATES, render
from winback.reports.build import delivery_funnel
from winback.warehouse.models import MessageEvent, OutboxMessage

UNSUB = "https://example.test/unsubscribe/tok"


def _funnel(engine: Engine, channel: str, events: dict[str, list[tuple[str, dict[str, Any]]]]) -> dict[str, int]:
    """One run whose messages (all `sent`) got `events` (outbox id -> [(event type, payload)]); its funnel row."""
    with engine.begin() as conn:
        run = insert_run(conn)
        for mid in events:
            conn.execute(insert(OutboxMessage).values(
                id=mid, run_id=run, customer_id=f"C-{mid}", step="winback", channel=channel, template="winback",
                to_address="x", context={}, status="sent", not_before=AS_OF, created_at=AS_OF, sent_at=AS_OF,
            ))  # fmt: skip
        rows = [
            {"event_key": f"{mid}:{n}", "outbox_id": mid, "event_type": kind, "occurred_at": AS_OF, "payload": payload}
            for mid, kinds in events.items()
            for n, (kind, payload) in enumerate(kinds)
        ]
        conn.execute(insert(MessageEvent), rows)
        funnel = delivery_funnel(conn, run)
    assert funnel["channel"].tolist() == [channel]
    return {k: int(v) for k, v in funnel.iloc[0].drop("channel").items()}


def test_twilio_statuses_do_not_add_into_outbox_statuses(engine: Engine) -> None:
    row = _funnel(engine, "sms", {
        "m1": [("queued", {}), ("sent", {}), ("delivered", {})],
        "m2": [("queued", {}), ("sent", {}), ("undelivered", {"ErrorCode": "30003"})],
    })  # fmt: skip
    assert (row["queued"], row["sent"], row["failed"]) == (0, 2, 0)  # the outbox: both sent
    assert (row["event_queued"], row["event_sent"]) == (2, 2)
    assert (row["event_delivered"], row["event_undelivered"], row["event_failed"]) == (1, 1, 0)


def test_a_bounced_dropped_or_blocked_email_is_not_delivered(engine: Engine) -> None:
    row = _funnel(engine, "email", {
        "ok": [("delivered", {})],
        "hard": [("delivered", {}), ("bounce", {"type": "bounce"})],
        "drop": [("dropped", {})],
        "soft": [("delivered", {}), ("blocked", {"type": "blocked"})],
    })  # fmt: skip
    assert row["event_delivered"] == 1
    assert (row["event_bounce"], row["event_dropped"], row["event_blocked"]) == (1, 1, 1)


def test_unsubscribe_clicks_and_machine_opens_are_not_engagement(engine: Engine) -> None:
    row = _funnel(engine, "email", {
        "reader": [("open", {"sg_machine_open": False}), ("click", {"url": "https://shop.test/sale"})],
        "leaver": [("open", {}), ("click", {"url": f"{UNSUB}?x=1"})],
        "apple": [("open", {"sg_machine_open": True})],
        "bare": [("click", {})],  # a click without a url is still a click
    })  # fmt: skip
    assert row["event_open"] == 2
    assert row["event_machine_open"] == 1
    assert row["event_click"] == 2


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_the_unsubscribe_link_is_not_click_tracked(template: str) -> None:
    from test_messages_render import _ctx

    out = render(template, "email", _ctx())
    assert out.html is not None
    assert f'<a clicktracking="off" href="{UNSUB}">Unsubscribe</a>' in out.html
