"""Turn a run's contact decisions into rendered outbox rows: address checked, message rendered, timed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from messages.contact_data import normalise_email, normalise_phone, phone_time_zone
from messages.quiet_hours import next_allowed
from messages.redact import mask_email, mask_phone
from messages.render import Brand, RenderError, build_context, render
from messages.unsubscribe import unsubscribe_url
from warehouse.outbox import message_id

REQUIRED = ("customer_id", "segment", "channel", "email", "phone", "locale", "time_zone", "first_name")


def _region(locale: str | None) -> str | None:
    return locale.split("_")[1] if locale and "_" in locale else None


def compose_rows(
    frame: pd.DataFrame,
    run_id: int,
    now: dt.datetime,
    *,
    quiet_start_hour: int = 21,
    quiet_end_hour: int = 8,
    brand: Brand = Brand(),
) -> list[dict[str, Any]]:
    """One outbox row per contacted customer.

    Bad contact data or a message that cannot be rendered becomes a `skipped` / `failed` row naming the
    customer's problem instead of stopping the batch; the row still exists, so nothing is lost silently.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"compose_rows: required columns missing: {', '.join(missing)}")
    rows: list[dict[str, Any]] = []
    for rec in frame.to_dict("records"):
        rec = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
        channel = rec["channel"]
        step = "apology" if rec["segment"] == "aggrieved" else "winback"
        row: dict[str, Any] = {
            "id": message_id(run_id, rec["customer_id"], step),
            "run_id": run_id, "customer_id": rec["customer_id"], "step": step, "channel": channel,
            "template": step, "subject": None, "body_text": "", "body_html": None, "status": "queued",
            "attempts": 0, "not_before": now, "created_at": now, "last_error": None,
        }  # fmt: skip
        if channel == "email":
            address, problem = normalise_email(rec["email"])
            masked = mask_email(rec["email"] or "")
        else:
            address, problem = normalise_phone(rec["phone"], _region(rec["locale"]))
            masked = mask_phone(rec["phone"] or "")
        if problem:
            rows.append({**row, "to_address": masked, "status": "skipped", "last_error": problem})
            continue
        row["to_address"] = address
        try:
            ctx = build_context(rec, brand, unsubscribe_url(rec["customer_id"], channel))
            rendered = render(step, channel, ctx)
        except (RenderError, ValueError) as exc:
            rows.append({**row, "status": "failed", "last_error": f"render: {exc}"})
            continue
        zone = rec["time_zone"] or (phone_time_zone(address) if channel == "sms" else None)
        row.update(
            subject=rendered.subject, body_text=rendered.text, body_html=rendered.html,
            not_before=next_allowed(now, zone, quiet_end_hour, quiet_start_hour),
        )  # fmt: skip
        rows.append(row)
    return rows
