"""A business's own table and column names, declared in YAML, read through warehouse.queries (real SQLite)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF
from sqlalchemy import Engine

from winback.settings import Settings
from winback.warehouse.db import make_engine
from winback.warehouse.frames import shared_values
from winback.warehouse.queries import contact_details, customer_summary, open_failures, reachability
from winback.warehouse.source import SourceMapping, SourceTables

MAPPING_YAML = """
customers:
  table: crm_clients
  customer_id: client_ref
  first_name: given_name
  email: mail
  phone: mobile
  locale: lang
  time_zone: tz
  preferred_channel: pref_channel
  do_not_contact: dnc
  fraud_flag: blocked
orders:
  table: sales
  order_id: sale_id
  customer_id: client_ref
  ordered_at: sold_at
  amount: total
  coupon_code: voucher
failures:
  table: incidents
  failure_id: incident_id
  customer_id: client_ref
  order_id: sale_ref
  category: kind
  severity: sev
  occurred_at: happened_at
  resolved_at: closed_at
  description: notes
consents:
  table: permissions
  customer_id: client_ref
  channel: medium
  granted: ok
  source: origin
  recorded_at: noted_at
"""

SCHEMA = [
    """CREATE TABLE crm_clients (client_ref TEXT PRIMARY KEY, given_name TEXT, mail TEXT, mobile TEXT,
       lang TEXT, tz TEXT, pref_channel TEXT, dnc INTEGER NOT NULL, blocked INTEGER NOT NULL)""",
    "CREATE TABLE sales (sale_id TEXT PRIMARY KEY, client_ref TEXT, sold_at TEXT, total REAL, voucher TEXT)",
    """CREATE TABLE incidents (incident_id TEXT PRIMARY KEY, client_ref TEXT, sale_ref TEXT, kind TEXT,
       sev INTEGER, happened_at TEXT, closed_at TEXT, notes TEXT)""",
    "CREATE TABLE permissions (client_ref TEXT, medium TEXT, ok INTEGER, origin TEXT, noted_at TEXT)",
]
CLIENTS = [
    ("K001", "Ada", "ada@example.test", "+447911123456", "en_GB", "Europe/London", None, 0, 0),
    ("K002", "Ben", "", None, "de_DE", "Europe/Berlin", "email", 1, 0),
    ("K003", "Cy", "cy@example.test", "", "en_US", None, "sms", 0, 1),
    ("K004", "Di", "di@example.test", "+447911654321", None, None, None, 0, 0),
]
SALES = [
    ("S1", "K001", "2026-01-10 12:00:00", 30.0, None),
    ("S2", "K001", "2026-03-10 12:00:00", 50.0, "WB-ACDE-FGHJ-KMNP"),
    ("S3", "K001", "2026-09-01 08:30:00", 20.5, None),
    ("S4", "K001", "2026-11-05 00:00:00", 99.0, None),  # after AS_OF
    ("S5", "K002", "2026-10-01 00:00:00", 15.25, None),
    ("S6", "K003", "2025-12-31 23:00:00", 100.0, None),
]
INCIDENTS = [
    # recent (within 90 days of AS_OF), resolved: kept
    ("I1", "K001", "S3", "late_delivery", 3, "2026-09-02 10:00:00", "2026-09-03 10:00:00", "courier lost it"),
    # old and resolved: dropped
    ("I2", "K001", "S1", "damaged_item", 4, "2026-01-12 09:00:00", "2026-01-20 09:00:00", None),
    # old but unresolved, no order: kept
    ("I3", "K002", None, "billing_error", 5, "2026-02-01 00:00:00", None, None),
    # old, resolved only after AS_OF: kept, and unresolved as of AS_OF
    ("I4", "K003", "S6", "wrong_item", 2, "2026-01-05 00:00:00", "2026-12-01 00:00:00", None),
    # after AS_OF: dropped
    ("I5", "K001", "S3", "outage", 4, "2026-11-03 00:00:00", None, None),
]
PERMISSIONS = [
    ("K001", "email", 1, "signup", "2025-01-01 00:00:00"),
    ("K001", "sms", 0, "signup", "2025-01-01 00:00:00"),
    ("K002", "email", 1, "checkout", "2025-01-01 00:00:00"),
    ("K002", "sms", 1, "checkout", "2025-01-01 00:00:00"),
    ("K003", "email", 0, "preference_centre", "2025-01-01 00:00:00"),
    ("K003", "sms", 1, "preference_centre", "2025-01-01 00:00:00"),
]


def _epoch_days(text: str) -> float:
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds() / 86400.0


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.begin() as conn:
        for ddl in SCHEMA:
            conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("INSERT INTO crm_clients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", CLIENTS)
        conn.exec_driver_sql("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", SALES)
        conn.exec_driver_sql("INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", INCIDENTS)
        conn.exec_driver_sql("INSERT INTO permissions VALUES (?, ?, ?, ?, ?)", PERMISSIONS)
    yield engine
    engine.dispose()


@pytest.fixture
def src(tmp_path: Path) -> SourceTables:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING_YAML)
    return SourceTables(SourceMapping.from_yaml(path))


# --------------------------------------------------------------------------- loading the mapping


def test_mapping_loads_the_declared_names(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING_YAML)
    mapping = SourceMapping.from_yaml(path)
    assert mapping.customers.table == "crm_clients"
    assert mapping.orders.ordered_at == "sold_at"
    assert mapping.failures.severity == "sev"
    assert mapping.consents.granted == "ok"
    assert mapping.schema_name is None


def test_partial_mapping_keeps_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("orders:\n  table: sales\n  amount: total\n")
    mapping = SourceMapping.from_yaml(path)
    assert (mapping.orders.table, mapping.orders.amount, mapping.orders.ordered_at) == (
        "sales",
        "total",
        "ordered_at",
    )
    assert mapping.customers == SourceMapping().customers


def test_empty_mapping_file_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("")
    assert SourceMapping.from_yaml(path) == SourceMapping()


def test_the_settings_name_the_mapping_file(tmp_path: Path, settings: Settings) -> None:
    demo = SourceTables.from_settings(settings)
    assert (demo.customers.name, demo.mapped) == ("customers", False)
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING_YAML)
    mapped = SourceTables.from_settings(settings.model_copy(update={"source_mapping": str(path)}))
    assert (mapped.customers.name, mapped.mapped) == ("crm_clients", True)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("customers:\n  tabel: crm_clients\n", r"customers\.tabel: Extra inputs are not permitted"),
        ("warehouse: snowflake\n", r"warehouse: Extra inputs are not permitted"),
        ("orders:\n  amount: [total, net]\n", r"orders\.amount: Input should be a valid string"),
        ("schema_name: 5\n", r"schema_name: Input should be a valid string"),
        ("failures: severity\n", r"failures: Input should be a valid dictionary"),
        ("orders: {table: sales\n", r"cannot read"),
    ],
    ids=[
        "unknown-column-key",
        "unknown-top-level-key",
        "list-for-name",
        "number-for-name",
        "scalar-section",
        "bad-yaml",
    ],
)
def test_bad_mapping_names_the_file_and_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^source mapping {re.escape(str(path))}: {problem}"):
        SourceMapping.from_yaml(path)


def test_missing_mapping_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ValueError, match=rf"source mapping {re.escape(str(path))}: cannot read"):
        SourceMapping.from_yaml(path)


def test_source_tables_address_columns_by_winback_names(src: SourceTables) -> None:
    assert src.orders.name == "sales"
    assert src.col(src.orders, "ordered_at").name == "sold_at"
    assert src.col(src.failures, "order_id").name == "sale_ref"
    assert src.col(src.consents, "channel").name == "medium"


# --------------------------------------------------------------------------- queries


def test_customer_summary(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        out = customer_summary(conn, src, AS_OF)
    assert list(out.columns) == ["customer_id", "n_orders", "n_days", "first_day", "last_day", "total_spend"]
    assert out["customer_id"].tolist() == ["K001", "K002", "K003"]  # K004 never ordered; S4 is after AS_OF
    assert out["n_orders"].tolist() == [3, 1, 1]
    assert out["n_days"].tolist() == [3, 1, 1]
    assert out["total_spend"].tolist() == pytest.approx([100.5, 15.25, 100.0])
    assert out["first_day"].tolist() == pytest.approx(
        [_epoch_days("2026-01-10 12:00"), _epoch_days("2026-10-01 00:00"), _epoch_days("2025-12-31 23:00")],
        abs=1e-6,
    )
    assert out["last_day"].tolist() == pytest.approx(
        [_epoch_days("2026-09-01 08:30"), _epoch_days("2026-10-01 00:00"), _epoch_days("2025-12-31 23:00")],
        abs=1e-6,
    )


def test_orders_on_one_day_are_one_purchase(crm: Engine, src: SourceTables) -> None:
    """A split order is not a repeat purchase: it must not shorten the customer's own rhythm."""
    from winback.warehouse.queries import summary_to_rfm

    with crm.begin() as conn:  # K002's only order was 2026-10-01 00:00; K001's last 2026-09-01 08:30
        conn.exec_driver_sql("INSERT INTO sales VALUES ('S8', 'K002', '2026-10-01 23:59:00', 5.0, NULL)")
        conn.exec_driver_sql("INSERT INTO sales VALUES ('S9', 'K001', '2026-09-01 19:00:00', 5.0, NULL)")
    with crm.connect() as conn:
        out = customer_summary(conn, src, AS_OF)
    assert out["n_orders"].tolist() == [4, 2, 1]
    assert out["n_days"].tolist() == [3, 1, 1]
    rfm = summary_to_rfm(out, AS_OF)
    assert rfm["frequency"].tolist() == [2, 0, 0]  # K001: two repeat days, not three repeat orders


def test_customer_summary_as_of_and_id_range(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        later = customer_summary(conn, src, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), id_range=(None, "K002"))
        middle = customer_summary(conn, src, AS_OF, id_range=("K002", "K003"))
        early = customer_summary(conn, src, dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert later["customer_id"].tolist() == ["K001"]
    assert later["n_orders"].tolist() == [4]
    assert later["total_spend"].tolist() == pytest.approx([199.5])
    assert middle["customer_id"].tolist() == ["K002"]
    assert early["customer_id"].tolist() == ["K001", "K003"]
    assert early["n_orders"].tolist() == [1, 1]


def test_open_failures(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        out = open_failures(conn, src, AS_OF, lookback_days=90)
    assert list(out.columns) == [
        "failure_id", "customer_id", "order_id", "category", "severity", "occurred_at", "resolved_at",
        "description", "order_amount",
    ]  # fmt: skip
    out = out.set_index("failure_id").sort_index()
    assert out.index.tolist() == ["I1", "I3", "I4"]
    i1, i3, i4 = out.loc["I1"], out.loc["I3"], out.loc["I4"]
    assert (i1["customer_id"], i1["order_id"], i1["category"], i1["severity"]) == (
        "K001",
        "S3",
        "late_delivery",
        3,
    )
    assert i1["occurred_at"] == pd.Timestamp("2026-09-02 10:00", tz="UTC")
    assert i1["resolved_at"] == pd.Timestamp("2026-09-03 10:00", tz="UTC")
    assert i1["order_amount"] == pytest.approx(20.5)
    assert i1["description"] == "courier lost it"
    assert pd.isna(i3["order_id"])
    assert pd.isna(i3["order_amount"])
    assert pd.isna(i3["resolved_at"])
    assert i3["severity"] == 5
    # resolved after AS_OF: not resolved yet at decision time
    assert pd.isna(i4["resolved_at"])
    assert i4["order_amount"] == pytest.approx(100.0)
    for col in ("occurred_at", "resolved_at"):
        assert isinstance(out[col].dtype, pd.DatetimeTZDtype)
        assert str(out[col].dt.tz) == "UTC"
    assert out["severity"].dtype == "int64"


def test_open_failures_lookback_and_id_range(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        # a 400-day lookback also catches the old resolved damage on S1
        wide = open_failures(conn, src, AS_OF, lookback_days=400)
        k001 = open_failures(conn, src, AS_OF, lookback_days=90, id_range=("K001", "K002"))
    assert sorted(wide["failure_id"]) == ["I1", "I2", "I3", "I4"]
    assert k001["failure_id"].tolist() == ["I1"]


def test_reachability(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        out = reachability(conn, src)
    assert list(out.columns) == [
        "customer_id", "do_not_contact", "fraud_flag", "preferred_channel", "locale", "time_zone",
        "has_email", "has_phone", "email_consent", "sms_consent",
    ]  # fmt: skip
    out = out.set_index("customer_id").sort_index()
    flags = ["do_not_contact", "fraud_flag", "has_email", "has_phone", "email_consent", "sms_consent"]
    expected = pd.DataFrame(
        [
            ("K001", False, False, True, True, True, False),
            ("K002", True, False, False, False, True, True),  # empty email, no phone
            ("K003", False, True, True, False, False, True),  # empty phone
            ("K004", False, False, True, True, False, False),  # no consent rows at all
        ],
        columns=["customer_id", *flags],
    ).set_index("customer_id")
    pd.testing.assert_frame_equal(out[flags], expected)
    assert out.loc["K003", "preferred_channel"] == "sms"
    assert out.loc["K002", "locale"] == "de_DE"
    assert out.loc["K001", "time_zone"] == "Europe/London"


def test_shared_values_keep_the_column_and_hold_each_value_once() -> None:
    """Equal strings from a driver, one object per row, become one object per distinct value; None stays."""
    # what a driver gives: equal strings, different objects
    repeated = pd.Series(["".join(list(v)) if v else None for v in ["one", "two", None] * 3], dtype=object)
    assert repeated.iloc[0] is not repeated.iloc[3]
    shared = shared_values(repeated)
    assert shared.dtype == object and shared.tolist() == repeated.tolist()
    assert shared.iloc[0] is shared.iloc[3] is shared.iloc[6] and shared.iloc[1] is shared.iloc[4]
    assert shared.iloc[2] is None and shared.index.equals(repeated.index)


def test_reachability_holds_each_locale_time_zone_and_channel_once(demo_engine: Engine) -> None:
    """On the 2,000-customer demo shop: a column of a few distinct values is not a string per customer."""
    with demo_engine.connect() as conn:
        reach = reachability(conn, SourceTables(SourceMapping()))
    for name in ("preferred_channel", "locale", "time_zone"):
        values = reach[name].dropna().tolist()
        assert len(values) > 10 * len(set(values)), name
        assert len({id(value) for value in values}) == len(set(values)), name


def test_reachability_id_range(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        out = reachability(conn, src, id_range=("K002", "K004"))
    assert sorted(out["customer_id"]) == ["K002", "K003"]


def test_contact_details(crm: Engine, src: SourceTables) -> None:
    with crm.connect() as conn:
        out = contact_details(conn, src, ["K003", "K001", "K999"])
    out = out.set_index("customer_id").sort_index()
    assert out.index.tolist() == ["K001", "K003"]
    assert out.loc["K001", "first_name"] == "Ada"
    assert out.loc["K001", "email"] == "ada@example.test"
    assert out.loc["K001", "phone"] == "+447911123456"
    assert out.loc["K003", "preferred_channel"] == "sms"


def test_default_mapping_does_not_fit_custom_tables(crm: Engine) -> None:
    from winback.errors import ConfigError

    missing = "table(s) not found: customers, orders, service_failures, consents"
    with crm.connect() as conn, pytest.raises(ConfigError, match=re.escape(missing)):
        customer_summary(conn, SourceTables(SourceMapping()), AS_OF)
