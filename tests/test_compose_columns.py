"""plan_columns: an outbox context made column by column is exactly `json.dumps` of the row's context dict."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from winback.config import CampaignConfig
from winback.messages.compose import CONTEXT_FIELDS, plan_columns, plan_rows, rows_of
from winback.messages.quiet_hours import QUIET_HOURS_KEY, ZONE_KEY

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
VARIANTS = {"lapsed": [{"name": "A"}, {"name": "B", "subject": 'Hi {{ customer.first_name }}, 20% "off" %s'}]}


def _frame() -> pd.DataFrame:
    """Three customers whose merge fields hold what JSON must escape, numbers, missing values and a variant."""
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "segment": ["lapsed", "aggrieved", "lapsed"],
            "channel": ["email", "sms", "email"],
            "email": ["a@example.com", None, "c@example.com"],
            "phone": [None, "+447700900123", None],
            "locale": ["en_GB", "fr_FR", None],
            "time_zone": ["Europe/London", "Not/AZone", None],
            "first_name": ['Ann "the %s" O\'Neil\n\u00e9\u674e', None, "1"],
            "code": ["WB-1", None, "WB-3"],
            "offer_kind": ["percent_discount", None, "store_credit"],
            "offer_value": [12.5, np.nan, 10.0],
            "offer_amount": [0.1 + 0.2, 0.0, 1e-7],
            "currency": ["GBP", None, "EUR"],
            "expires_at": pd.to_datetime(["2026-11-30 11:59:59.5", None, "2026-12-01 00:00:00.0"], utc=True),
            "last_order_at": pd.to_datetime(["2025-01-02 03:04:05", "2025-02-03 00:00:00", None], utc=True),
            "failure_category": [None, "lost_parcel", None],
            "order_id": [None, "O-9", None],
            "occurred_at": pd.to_datetime([None, "2026-10-01 08:00:00", None], utc=True),
            "unresolved": [True, False, True],
            "description": [None, "<b>lost</b> \\ 100%", None],
            "variant": ["B", None, "A"],
        }
    )


def test_each_context_is_the_json_dumps_of_its_dict() -> None:
    variants = CampaignConfig(variants=VARIANTS).variants
    columns = plan_columns(_frame(), 7, NOW, quiet_start_hour=22, quiet_end_hour=7, variants=variants)
    contexts = [json.loads(text) for text in columns["context"]]
    assert columns["context"] == [json.dumps(ctx) for ctx in contexts]  # same text as json.dumps, key order kept
    first, second, third = contexts
    assert list(first)[: len(CONTEXT_FIELDS)] == list(CONTEXT_FIELDS)
    assert first["first_name"] == 'Ann "the %s" O\'Neil\n\u00e9\u674e'
    assert first["subject_template"] == VARIANTS["lapsed"][1]["subject"] and first["variant"] == "B"
    assert first["expires_at"] == "2026-11-30T11:59:59.500000+00:00" and first["offer_amount"] == 0.1 + 0.2
    assert first[ZONE_KEY] == "Europe/London" and first[QUIET_HOURS_KEY] == [22, 7]
    assert second["offer_value"] is None and second["first_name"] is None and second["unresolved"] is False
    assert second["description"] == "<b>lost</b> \\ 100%" and second["occurred_at"] == "2026-10-01T08:00:00+00:00"
    assert third["variant"] == "A" and "subject_template" not in third and third["last_order_at"] is None


def test_plan_rows_are_the_columns_row_by_row() -> None:
    columns = plan_columns(_frame(), 7, NOW)
    rows = plan_rows(_frame(), 7, NOW)
    assert rows == rows_of(columns)
    assert [r["id"] for r in rows] == columns["id"] and len(set(columns["id"])) == 3
    assert [r["to_address"] for r in rows] == ["a@example.com", "+447700900123", "c@example.com"]
    assert all(set(columns) == set(row) for row in rows)
