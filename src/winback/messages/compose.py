"""Turn a run's contact decisions into outbox rows: merge fields captured, send time set by quiet hours.

Rendering and address checks happen at send time (messages.dispatch); here one message per
(template, channel) is rendered from real data, so a broken template fails the run before anything
is queued, naming the template.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype, is_object_dtype

from winback.config import Variant
from winback.listing import first_few
from winback.messages.contact_data import recipient_time_zone
from winback.messages.quiet_hours import next_allowed, send_window_context
from winback.messages.render import Brand, RenderError, build_context, render
from winback.messages.unsubscribe import CHECK_LINKS
from winback.warehouse.bulk import python_values
from winback.warehouse.outbox import decoded_context, message_id

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


def _json_column(values: pd.Series) -> list[Any]:
    """One merge field for every row, as `_plain` makes it, converted per column rather than per value."""
    if _utc_to_the_microsecond(values):
        return _iso_utc(values)
    if is_object_dtype(values.dtype) or is_datetime64_any_dtype(values.dtype):
        return [_plain(v) for v in values.tolist()]
    return python_values(values)


def _utc_to_the_microsecond(values: pd.Series) -> bool:
    """Whether `_iso_utc` prints this column exactly as Timestamp.isoformat() would."""
    dtype = values.dtype
    return (
        isinstance(dtype, pd.DatetimeTZDtype)
        and dtype.tz.utcoffset(None) == dt.timedelta(0)
        and bool((values.dt.nanosecond.fillna(0) == 0).all())
    )


def _iso_utc(values: pd.Series) -> list[str | None]:
    """Timestamp.isoformat() for a UTC column, vectorised: a fraction only where the second has one.

    Only present values are formatted: offer and failure times are missing for most customers.
    """
    wall = values.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    present = ~np.isnat(wall)
    stamps = wall[present]
    text = np.datetime_as_string(stamps, unit="us")
    text = np.where(stamps == stamps.astype("datetime64[s]"), text.astype("U19"), text)
    out = np.full(len(wall), None, dtype=object)
    out[present] = np.char.add(text, "+00:00")
    return out.tolist()


def recipient_zones(frame: pd.DataFrame) -> list[str | None]:
    """Each row's zone for quiet hours (`recipient_time_zone`), worked out once per distinct input.

    A campaign repeats a handful of profile zones: those are checked once each. Only rows whose profile
    zone is missing or invalid need their phone read, once per distinct (profile zone, phone, locale).
    """
    profiles = python_values(frame["time_zone"])
    known = {zone: recipient_time_zone(zone, None, None) for zone in set(profiles)}
    zones = [known[zone] for zone in profiles]
    unknown = [i for i, zone in enumerate(zones) if zone is None]
    if unknown:
        phones, locales = python_values(frame["phone"]), python_values(frame["locale"])
        from_phone: dict[tuple[str | None, str | None, str | None], str | None] = {}
        for i in unknown:
            key = (profiles[i], phones[i], locales[i])
            if key not in from_phone:
                from_phone[key] = recipient_time_zone(*key)
            zones[i] = from_phone[key]
    return zones


def _step_for(segment: str) -> str:
    return "apology" if segment == "aggrieved" else "winback"


def _variant_specs(frame: pd.DataFrame, variants: Mapping[str, list[Variant]] | None) -> list[Variant | None]:
    """Each row's variant as the campaign declares it (None: no variant drawn, or none declared)."""
    if not variants or "variant" not in frame.columns:
        return [None] * len(frame)
    specs = {(segment, v.name): v for segment, declared in variants.items() for v in declared}
    return [specs.get((s, v)) for s, v in zip(python_values(frame["segment"]), python_values(frame["variant"]),
                                                strict=True)]  # fmt: skip


def plan_columns(
    frame: pd.DataFrame,
    run_id: int,
    now: dt.datetime,
    *,
    quiet_start_hour: int = 21,
    quiet_end_hour: int = 8,
    variants: Mapping[str, list[Variant]] | None = None,
) -> dict[str, list[Any]]:
    """One outbox row per contacted customer, as columns ready to insert (`outbox.enqueue_columns`).

    Built column by column (a partition holds tens of thousands of customers); a missing address is "".
    Each row's context carries its recipient's zone and these quiet hours: the sender keeps them too. A
    customer drawn to a variant (``variant`` column, specs in ``variants`` per segment) gets its template and
    its subject (kept in the context as ``subject_template``, rendered at send time like the rest). The
    context is JSON text, exactly ``json.dumps`` of the row's context (`plan_rows` gives it as a dict), made
    one column at a time: each distinct value is encoded once, not each cell.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"plan_rows: required columns missing: {', '.join(missing)}")
    fields = [c for c in CONTEXT_FIELDS if c in frame.columns]
    zones = recipient_zones(frame)
    send_at = {zone: next_allowed(now, zone, quiet_end_hour, quiet_start_hour) for zone in set(zones)}
    customers = python_values(frame["customer_id"])
    steps = [_step_for(s) for s in python_values(frame["segment"])]
    address = frame["email"].where(frame["channel"] == "email", frame["phone"])
    specs = _variant_specs(frame, variants)
    templates = [spec.template if spec is not None and spec.template else step for spec, step in zip(specs, steps,
                 strict=True)]  # fmt: skip
    n = len(customers)
    return {
        "id": [message_id(run_id, customer, step) for customer, step in zip(customers, steps, strict=True)],
        "run_id": [run_id] * n,
        "customer_id": customers,
        "step": steps,
        "channel": python_values(frame["channel"]),
        "template": templates,
        "to_address": address.to_numpy(dtype=object, na_value="").tolist(),
        # the zone and quiet hours go with the row: the sender checks them again when it claims the row
        "context": _context_texts(frame, fields, zones, specs, (quiet_start_hour, quiet_end_hour)),
        "status": ["queued"] * n,
        "attempts": [0] * n,
        "not_before": [send_at[zone] for zone in zones],
        "created_at": [now] * n,
    }


def _context_texts(
    frame: pd.DataFrame,
    fields: list[str],
    zones: list[str | None],
    specs: list[Variant | None],
    quiet_hours: tuple[int, int],
) -> list[str]:
    """``json.dumps`` of each row's context (merge fields, then send window and variant), column by column."""
    cells = [_json_texts(_json_column(frame[f])) for f in fields]
    head = ", ".join(f"{json.dumps(name).replace('%', '%%')}: %s" for name in fields)
    tails: dict[tuple[str | None, int], str] = {}
    for zone, spec in zip(zones, specs, strict=True):
        key = (zone, id(spec))
        if key not in tails:
            tail = {**send_window_context(zone, *quiet_hours), **_variant_context(spec)}
            clash = set(tail) & set(fields)
            if clash:  # a dict merge would overwrite in place: the text below would differ from json.dumps
                raise ValueError(f"plan_rows: context keys given twice: {', '.join(sorted(clash))}")
            tails[key] = json.dumps(tail)[1:-1]
    template = "{" + head + (", %s}" if head else "%s}")
    row_tails = [tails[(zone, id(spec))] for zone, spec in zip(zones, specs, strict=True)]
    return [template % values for values in zip(*cells, row_tails, strict=True)]


def _json_texts(values: list[Any]) -> list[str]:
    """Each value as ``json.dumps`` writes it, encoded once per distinct (type, value)."""
    known: dict[tuple[type, Any], str] = {}
    out = []
    for value in values:
        key = (type(value), value)
        text = known.get(key)
        if text is None:
            text = known[key] = json.dumps(value)
        out.append(text)
    return out


def rows_of(columns: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """`plan_columns`' columns as one dict per row, each context decoded (what `plan_rows` returns)."""
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    for row in rows:
        row["context"] = decoded_context(row["context"])
    return rows


def plan_rows(frame: pd.DataFrame, run_id: int, now: dt.datetime, **options: Any) -> list[dict[str, Any]]:
    """`plan_columns` (same `options`) as one outbox row, a dict with its context decoded, per customer."""
    return rows_of(plan_columns(frame, run_id, now, **options))


def _variant_context(spec: Variant | None) -> dict[str, Any]:
    if spec is None:
        return {}
    return {"variant": spec.name, **({"subject_template": spec.subject} if spec.subject else {})}


TEMPLATE_CHECK_ROWS = 20  # rows of one (template, channel) pair tried before the template is called broken


def check_templates(rows: list[dict[str, Any]], brand: Brand = Brand()) -> None:  # noqa: B008
    """Render every (template, channel) pair from real rows; raises RenderError when a pair renders for none.

    A broken template fails every row, so it stops the run before anything is queued. One customer's bad
    data (an unknown failure category, a missing order) fails only that row: it must not block everyone
    else's messages, so the next rows are tried, and that message fails on its own at send time.
    """
    rendered: set[tuple[str, str]] = set()
    failed: dict[tuple[str, str], list[tuple[str, Exception]]] = {}
    for row in rows:
        key = (row["template"], row["channel"], row["context"].get("subject_template"))
        if key in rendered or len(failed.get(key, ())) >= TEMPLATE_CHECK_ROWS:
            continue
        try:
            ctx = build_context(row["context"], brand, CHECK_LINKS.url(row["customer_id"], row["channel"]))
            render(row["template"], row["channel"], ctx)
        except ValueError as exc:  # RenderError is one
            failed.setdefault(key, []).append((row["customer_id"], exc))
        else:
            rendered.add(key)
    for (template, channel, subject), tried in failed.items():
        if (template, channel, subject) not in rendered:
            customers = first_few(customer for customer, _ in tried)
            first = tried[0][1]
            raise RenderError(
                f"template {template!r} ({channel}) rendered for none of the {len(tried)} customers tried "
                f"({customers}): {first}"
            ) from first
