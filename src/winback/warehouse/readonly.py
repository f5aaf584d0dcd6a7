"""The customer's warehouse, opened so that winback can only read it.

winback reads customers, orders, service failures and consents from the business's analytical warehouse and
writes nothing there: its own state lives in its own database (`warehouse.db`). Read-only is made true by
the connection itself wherever the engine allows it, not by winback's good behaviour alone:

- DuckDB: the file is opened `read_only=True` (any write fails in the engine);
- SQLite: the file is opened through its `mode=ro` URI (likewise);
- PostgreSQL: every transaction starts `READ ONLY` (`default_transaction_read_only=on`); grant winback's
  role SELECT on the source tables and nothing else, which the tests do;
- Snowflake, BigQuery and other dialects: the role's grants decide (give it SELECT only).
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from winback.errors import ConfigError

# the package that brings each dialect's driver, for the one-line error when it is missing
DRIVER_PACKAGES = {
    "duckdb": "duckdb-engine",
    "snowflake": "snowflake-sqlalchemy",
    "bigquery": "sqlalchemy-bigquery",
    "postgresql": "psycopg[binary]",
    "mysql": "a MySQL driver (winback does not test MySQL)",
}


def normalised_url(url: str) -> str:
    """`postgres://` (as hosting providers give it) and bare `postgresql://` use psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def warehouse_engine(url: str) -> Engine:
    """An engine on the warehouse at `url` that refuses writes wherever the engine can be told to.

    Parameters
    ----------
    url
        The warehouse's SQLAlchemy URL (`WINBACK_WAREHOUSE_URL`): `duckdb:///file.duckdb`,
        `postgresql://...`, `sqlite:///file.db`, `snowflake://...`, `bigquery://...`.

    Returns
    -------
    Engine
        Connections from it read only (see the module docstring for what guarantees it per engine).
    """
    url = normalised_url(url)
    backend = url.split(":", 1)[0].split("+", 1)[0]
    try:
        if backend == "duckdb":
            # no progress bar: DuckDB draws it on the process's stdout for a query over 2 s, which would
            # corrupt a child process's result stream (child_process) and any piped output
            engine = create_engine(url, connect_args={"read_only": True}, hide_parameters=True)
            event.listen(engine, "connect", _no_progress_bar)
            return engine
        if backend == "sqlite":
            return create_engine(_sqlite_read_only(url), hide_parameters=True)
        if backend == "postgresql":
            options = {"options": "-c default_transaction_read_only=on"}
            return create_engine(url, connect_args=options, pool_pre_ping=True, hide_parameters=True)
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    except ImportError as exc:
        package = DRIVER_PACKAGES.get(backend, f"the SQLAlchemy dialect for {backend}://")
        raise ConfigError(
            f"no driver for {backend}:// warehouse URLs ({exc.name or exc}): install {package}; "
            "check WINBACK_WAREHOUSE_URL"
        ) from None


def _no_progress_bar(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.execute("SET enable_progress_bar = false")


def _sqlite_read_only(url: str) -> str:
    """The same SQLite file through its read-only URI (`file:...?mode=ro`): a write fails in SQLite itself."""
    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        return url  # an in-memory database is private to its connection: nothing of the customer's to protect
    return f"sqlite:///file:{database}?mode=ro&uri=true"


@lru_cache(maxsize=4)
def warehouse_engine_for(url: str) -> Engine:
    """A process-wide read-only engine per warehouse URL (as `db.engine_for` is for the state database)."""
    return warehouse_engine(url)
