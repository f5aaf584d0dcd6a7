"""Turn a run's contact decisions into outbox rows: merge fields captured, send time set by quiet hours.

Rendering and address checks happen at send time (messages.dispatch); here one message per
(template, channel) is rendered from real data, so a broken template fails the run before anything
is queued, naming the template.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from messages.contact_data import phone_time_zone
from messages.quiet_hours import next_allowed
from messages.render import Brand, build_context, render
from messages.unsubscribe import unsubscribe_url
from warehouse.outbox import message_id

REQUIRED = ("customer_id", "segment", "channel", "email", "phone", "locale", "time_zone", "first_name")
CONTEXT_FIELDS = (
    "first_name",
    "locale",
    "code",
    "offer_kind",
    "offer_value",
    "offer_amount",
    "currency",
    "expires_at",
    "last_order_at",
    "failure_category",
    "order_id",
    "occurred_at",
    "unresolved",
    "description",
)


def _plain(value: Any) -> Any:
    """JSON-safe: timestamps as ISO text, missing values as None, numpy scalars as Python ones."""
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def step_for(segment: str) -> str:
    return "apology" if segment == "aggrieved" else "winback"


def plan_rows(
    frame: pd.DataFrame, run_id: int, now: dt.datetime, *, quiet_start_hour: int = 21, quiet_end_hour: int = 8
) -> list[dict[str, Any]]:
    """One outbox row per contacted customer, ready to insert."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"plan_rows: required columns missing: {', '.join(missing)}")
    fields = [c for c in CONTEXT_FIELDS if c in frame.columns]
    # the profile's zone, else (for SMS) the number's; unknown zones fall back to UTC in next_allowed
    zones = frame["time_zone"].astype(object).where(frame["time_zone"].notna(), None)
    no_zone = zones.isna() & (frame["channel"] == "sms") & frame["phone"].notna()
    zones[no_zone] = [phone_time_zone(p) for p in frame.loc[no_zone, "phone"]]
    send_at = {zone: next_allowed(now, zone, quiet_end_hour, quiet_start_hour) for zone in zones.unique()}
    rows: list[dict[str, Any]] = []
    for rec, zone in zip(frame.to_dict("records"), zones, strict=True):
        step = step_for(rec["segment"])
        address = rec["email"] if rec["channel"] == "email" else rec["phone"]
        rows.append(
            {
                "id": message_id(run_id, rec["customer_id"], step),
                "run_id": run_id,
                "customer_id": rec["customer_id"],
                "step": step,
                "channel": rec["channel"],
                "template": step,
                "to_address": address or "",
                "context": {f: _plain(rec.get(f)) for f in fields},
                "status": "queued",
                "attempts": 0,
                "not_before": send_at[zone],
                "created_at": now,
            }
        )
    return rows


def check_templates(rows: list[dict[str, Any]], brand: Brand = Brand()) -> None:  # noqa: B008
    """Render the first row of every (template, channel) pair; raises RenderError naming what broke."""
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (row["template"], row["channel"])
        if key in seen:
            continue
        seen.add(key)
        ctx = build_context(row["context"], brand, unsubscribe_url(row["customer_id"], row["channel"]))
        render(row["template"], row["channel"], ctx)
