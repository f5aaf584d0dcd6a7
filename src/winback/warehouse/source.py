"""Where the business's own data lives: a declared mapping of table and column names.

A real warehouse rarely calls its tables `orders` and `customers`. Point winback at them with a YAML file
(`WINBACK_SOURCE_MAPPING=path/to/mapping.yaml`) instead of changing code; every query in
`warehouse.queries` reads the source through the lightweight tables built here, once per command
(`SourceTables.from_settings`) and handed down.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    Numeric,
    String,
    Text,
    column,
    func,
    inspect,
    select,
    table,
)
from sqlalchemy.sql.expression import TableClause

from winback.errors import ConfigError
from winback.settings import Settings
from winback.yaml_models import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomersSource(_Strict):
    """Where the customers table and its columns are: contact details, preferences, do-not-contact flags."""

    table: str = "customers"
    customer_id: str = "customer_id"
    first_name: str = "first_name"
    email: str = "email"
    phone: str = "phone"
    locale: str = "locale"
    time_zone: str = "time_zone"
    preferred_channel: str = "preferred_channel"
    do_not_contact: str = "do_not_contact"
    fraud_flag: str = "fraud_flag"


class OrdersSource(_Strict):
    """Where the orders table and its columns are."""

    table: str = "orders"
    order_id: str = "order_id"
    customer_id: str = "customer_id"
    ordered_at: str = "ordered_at"
    amount: str = "amount"
    coupon_code: str = "coupon_code"


class FailuresSource(_Strict):
    """Where the service-failures table and its columns are."""

    table: str = "service_failures"
    failure_id: str = "failure_id"
    customer_id: str = "customer_id"
    order_id: str = "order_id"
    category: str = "category"
    severity: str = "severity"
    occurred_at: str = "occurred_at"
    resolved_at: str = "resolved_at"
    description: str = "description"


class ConsentsSource(_Strict):
    """Where the consent records table and its columns are."""

    table: str = "consents"
    customer_id: str = "customer_id"
    channel: str = "channel"
    granted: str = "granted"
    source: str = "source"
    recorded_at: str = "recorded_at"


class SourceMapping(_Strict):
    """Table and column names of the business's data; the defaults are the demo's."""

    schema_name: str | None = None
    customers: CustomersSource = CustomersSource()
    orders: OrdersSource = OrdersSource()
    failures: FailuresSource = FailuresSource()
    consents: ConsentsSource = ConsentsSource()

    @classmethod
    def from_yaml(cls, path: Path) -> SourceMapping:
        """Load a mapping file; a wrong key or type fails with the file and the offending entry named."""
        return load_yaml_model(cls, path, "source mapping")

    @classmethod
    def load(cls, path: str | Path | None) -> SourceMapping:
        """The mapping in this file (WINBACK_SOURCE_MAPPING's), else the demo's names."""
        return cls.from_yaml(Path(path)) if path else cls()


def _table(name: str, schema: str | None, **columns: tuple[str, object]) -> TableClause:
    """A table whose columns are labelled with winback's names whatever the source calls them."""
    cols = [column(source_name, type_) for source_name, type_ in columns.values()]
    t = table(name, *cols, schema=schema)
    t.winback_names = {wb: src for wb, (src, _) in columns.items()}  # type: ignore[attr-defined]
    return t


class SourceTables:
    """The four source tables as SQLAlchemy selectables, addressed by winback's column names.

    `mapped`: the names come from a mapping file an operator wrote, so a table missing where it says is
    a misconfiguration (see `delivery.dispatch.send_time_source`), not a database that has no such table.
    """

    def __init__(self, mapping: SourceMapping, *, mapped: bool = False, warehouse_url: str | None = None) -> None:
        self.mapped = mapped
        # where these tables are read, read only (None: the same database as winback's state)
        self.warehouse_url = warehouse_url
        m, s = mapping, mapping.schema_name
        self.customers = _table(
            m.customers.table,
            s,
            customer_id=(m.customers.customer_id, String()),
            first_name=(m.customers.first_name, String()),
            email=(m.customers.email, String()),
            phone=(m.customers.phone, String()),
            locale=(m.customers.locale, String()),
            time_zone=(m.customers.time_zone, String()),
            preferred_channel=(m.customers.preferred_channel, String()),
            do_not_contact=(m.customers.do_not_contact, Boolean()),
            fraud_flag=(m.customers.fraud_flag, Boolean()),
        )
        self.orders = _table(
            m.orders.table,
            s,
            order_id=(m.orders.order_id, String()),
            customer_id=(m.orders.customer_id, String()),
            ordered_at=(m.orders.ordered_at, DateTime(timezone=True)),
            amount=(m.orders.amount, Numeric(12, 2)),
            coupon_code=(m.orders.coupon_code, String()),
        )
        self.failures = _table(
            m.failures.table,
            s,
            failure_id=(m.failures.failure_id, String()),
            customer_id=(m.failures.customer_id, String()),
            order_id=(m.failures.order_id, String()),
            category=(m.failures.category, String()),
            severity=(m.failures.severity, Integer()),
            occurred_at=(m.failures.occurred_at, DateTime(timezone=True)),
            resolved_at=(m.failures.resolved_at, DateTime(timezone=True)),
            description=(m.failures.description, Text()),
        )
        self.consents = _table(
            m.consents.table,
            s,
            customer_id=(m.consents.customer_id, String()),
            channel=(m.consents.channel, String()),
            granted=(m.consents.granted, Boolean()),
            source=(m.consents.source, String()),
            recorded_at=(m.consents.recorded_at, DateTime(timezone=True)),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, database_url: str | None = None, warehouse_url: str | None = None
    ) -> SourceTables:
        """The tables WINBACK_SOURCE_MAPPING names (the file is read now), else the demo's.

        They live in the warehouse WINBACK_WAREHOUSE_URL names (None when that is winback's own database).
        A flow given its URLs (`database_url_override`, `warehouse_url_override`) passes them: the warehouse
        is then `warehouse_url`, else the one that goes with `database_url` (see `Settings.warehouse_url_for`).
        """
        state = database_url or settings.database_url
        warehouse = warehouse_url or settings.warehouse_url_for(state)
        return cls(
            SourceMapping.load(settings.source_mapping),
            mapped=settings.source_mapping is not None,
            warehouse_url=warehouse if warehouse != state else None,
        )

    def reader(self, state: Engine) -> Engine:
        """The engine to read these tables with: the warehouse's (read only), else `state` when they live there.

        Every read of the source goes through it; nothing that joins a source table with winback's own may,
        since the two may be different databases (see warehouse.crossread).
        """
        if self.warehouse_url is None or self.warehouse_url == state.url.render_as_string(hide_password=False):
            return state
        from winback.warehouse.readonly import warehouse_engine_for

        return warehouse_engine_for(self.warehouse_url)

    def release_reader(self, state: Engine) -> None:
        """Close the warehouse's pooled connections; the next read opens a new one.

        A DuckDB warehouse keeps the blocks a query read for as long as a connection to its file is open:
        ~240 MiB after a million customers' orders, held through deciding and sending, which read a few
        customers' contact details only. winback's own database (`state`) is left alone.
        """
        reader = self.reader(state)
        if reader is not state:
            reader.dispose()

    @staticmethod
    def col(t: TableClause, name: str):  # type: ignore[no-untyped-def]
        """Column `name` (winback's name) of source table `t`."""
        return t.c[t.winback_names[name]]  # type: ignore[attr-defined]


def missing_tables(engine: Engine, tables: Iterable[TableClause]) -> list[str]:
    """The names of those of `tables` the database does not hold, in the order given."""
    inspector = inspect(engine)
    return [t.fullname for t in tables if not inspector.has_table(t.name, schema=t.schema)]


# the key column of each table whose key must be unique (consents are keyed by customer and channel)
KEYS = {"customers": "customer_id", "orders": "order_id", "failures": "failure_id"}
TABLE_KEYS = ("customers", "orders", "failures", "consents")


@dataclass(frozen=True)
class SourceSchema:
    """What the warehouse says about the mapped tables: how each column is stored, and which keys it enforces.

    `kinds` maps (table key, winback column) to "number", "time", "boolean" or "text": a column stored as text
    is parsed, and checked, before it is used as a number or a time. `unique_keys` names the tables whose key
    column the database itself keeps unique (primary key or unique constraint), which need no duplicate check.
    """

    dialect: str
    kinds: dict[tuple[str, str], str]
    unique_keys: frozenset[str]
    not_null: frozenset[tuple[str, str]] = frozenset()  # (table key, winback column) declared NOT NULL

    def kind(self, table_key: str, name: str) -> str:
        """How a column is stored; "text" when unknown, so it is parsed and checked before use."""
        return self.kinds.get((table_key, name), "text")


def _kind(type_: object) -> str:
    if isinstance(type_, Boolean):
        return "boolean"
    if isinstance(type_, Integer | Numeric | Float):
        return "number"
    if isinstance(type_, DateTime | Date):
        return "time"
    return "text"


def source_schema(conn: Connection | Engine, src: SourceTables) -> SourceSchema:
    """Check the mapping whole against the warehouse and describe its columns (cached per database).

    Every mapped table and column must exist: otherwise a ConfigError names all of them at once, before
    anything is read, decided or stored.
    """
    engine = conn.engine if isinstance(conn, Connection) else conn
    key = engine.url.render_as_string(hide_password=True)
    cache: dict[str, SourceSchema] = src.__dict__.setdefault("_schemas", {})
    if key not in cache:
        cache[key] = _inspect_source(conn, src)
    return cache[key]


def _inspect_source(conn: Connection | Engine, src: SourceTables) -> SourceSchema:
    inspector = inspect(conn)
    missing_tables: list[str] = []
    missing_columns: list[str] = []
    kinds: dict[tuple[str, str], str] = {}
    unique: set[str] = set()
    not_null: set[tuple[str, str]] = set()
    for key in TABLE_KEYS:
        t: TableClause = getattr(src, key)
        if not inspector.has_table(t.name, schema=t.schema):
            missing_tables.append(t.fullname)
            continue
        stored = {c["name"]: c for c in _columns(conn, inspector, t)}
        folded = {name.lower(): c for name, c in stored.items()}
        for wb_name, source_name in t.winback_names.items():  # type: ignore[attr-defined]
            found = stored.get(source_name, folded.get(source_name.lower()))
            type_ = None if found is None else found["type"]
            if found is not None and found.get("nullable") is False:
                not_null.add((key, wb_name))
            if type_ is None:
                missing_columns.append(
                    f"{t.fullname}.{source_name}" + (f" ({wb_name})" if wb_name != source_name else "")
                )
            else:
                kinds[(key, wb_name)] = _kind(type_)
        if key in KEYS and _declared_unique(inspector, t, t.winback_names[KEYS[key]]):  # type: ignore[attr-defined]
            unique.add(key)
    if missing_tables or missing_columns:
        parts = [f"table(s) not found: {', '.join(missing_tables)}"] if missing_tables else []
        parts += [f"column(s) not found: {', '.join(missing_columns)}"] if missing_columns else []
        raise ConfigError(
            f"source mapping: {'; '.join(parts)}: set WINBACK_SOURCE_MAPPING to name your tables and columns "
            "(see examples/)"
        )
    dialect = conn.dialect.name
    return SourceSchema(dialect, kinds, frozenset(unique), frozenset(not_null))


def _columns(conn: Connection | Engine, inspector, t: TableClause) -> list[dict]:  # type: ignore[no-untyped-def]
    """The table's columns as the inspector gives them (name, type, nullable).

    duckdb-engine inherits PostgreSQL's reflection, whose column query DuckDB cannot run (no pg_collation):
    there the standard information_schema is read instead, through SQLAlchemy Core.
    """
    if conn.dialect.name != "duckdb":
        return inspector.get_columns(t.name, schema=t.schema)
    info = table("columns", column("table_name"), column("table_schema"), column("column_name"),
                 column("data_type"), column("is_nullable"), schema="information_schema")  # fmt: skip
    stmt = select(info.c.column_name, info.c.data_type, info.c.is_nullable).where(info.c.table_name == t.name)
    if t.schema:
        stmt = stmt.where(info.c.table_schema == t.schema)
    with conn.connect() if isinstance(conn, Engine) else nullcontext(conn) as c:
        rows = c.execute(stmt).all()
    return [{"name": n, "type": _duckdb_type(str(kind)), "nullable": nullable != "NO"} for n, kind, nullable in rows]


def _duckdb_type(name: str) -> object:
    """A SQLAlchemy type standing for DuckDB's type name, as far as `_kind` tells them apart."""
    name = name.upper()
    if name == "BOOLEAN":
        return Boolean()
    if name.startswith(("TIMESTAMP", "DATETIME")):
        return DateTime()
    if name == "DATE":
        return Date()
    if name.startswith(("DECIMAL", "NUMERIC")):
        return Numeric()
    if name in ("DOUBLE", "FLOAT", "REAL"):
        return Float()
    if name.endswith("INT") or name in ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT"):
        return Integer()
    return String()


def _declared_unique(inspector, t: TableClause, column_name: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the database enforces `column_name` alone as unique: a primary key, unique constraint or index.

    DuckDB: read from its own catalogue (`duckdb_constraints()`), as duckdb-engine's borrowed PostgreSQL
    reflection fails there and aborts the transaction. A key declared there is enforced, so the run's
    whole-table duplicate checks (a GROUP BY of ten million order ids) are not needed.
    """
    if inspector.dialect.name == "duckdb":
        return _duckdb_declared_unique(inspector.bind, t, column_name)
    try:
        if inspector.get_pk_constraint(t.name, schema=t.schema).get("constrained_columns") == [column_name]:
            return True
        if any(u["column_names"] == [column_name] for u in inspector.get_unique_constraints(t.name, schema=t.schema)):
            return True
        return any(
            i.get("unique") and i["column_names"] == [column_name]
            for i in inspector.get_indexes(t.name, schema=t.schema)
        )
    except NotImplementedError:  # a dialect that cannot tell: check the keys ourselves
        return False


def _duckdb_declared_unique(conn: Connection | Engine, t: TableClause, column_name: str) -> bool:
    """Whether DuckDB's catalogue holds a primary key or unique constraint on `column_name` alone."""
    found = func.duckdb_constraints().table_valued(
        "schema_name", "table_name", "constraint_type", "constraint_column_names"
    )
    stmt = select(found.c.constraint_column_names).where(
        found.c.table_name == t.name, found.c.constraint_type.in_(["PRIMARY KEY", "UNIQUE"])
    )
    if t.schema:
        stmt = stmt.where(found.c.schema_name == t.schema)
    with conn.connect() if isinstance(conn, Engine) else nullcontext(conn) as c:
        keys = [list(names) for (names,) in c.execute(stmt)]
    return any([name.lower() for name in names] == [column_name.lower()] for names in keys)
