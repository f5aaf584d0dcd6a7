"""One engine factory and one sessionmaker for a database URL (the caller's `Settings.database_url`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from winback.errors import ConfigError


def make_engine(url: str) -> Engine:
    """Build an engine; SQLite gets WAL and a busy timeout so a reader never blocks the sender."""
    for scheme in ("postgresql://", "postgres://"):  # postgres:// as Heroku, Render and Supabase give it
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url.removeprefix(scheme)
    # hide_parameters: a database error's text would otherwise carry the bound values (addresses, phone
    # numbers) into Prefect's logs
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if url.startswith("duckdb"):
            # no pre-ping: DuckDB's connection keeps the ping's unfetched result open, and the next bulk write on
            # it fails ("connection has an unfinished result"); an embedded file has no server to drop it anyway
            return create_engine(url, hide_parameters=True)
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    except ImportError as exc:  # a dialect whose driver is not installed (mysql://, mssql://, ...)
        scheme = url.split(":", 1)[0]
        raise ConfigError(
            f"no database driver for {scheme}:// URLs ({exc.name or exc}): winback runs on SQLite "
            "(sqlite:///file.db) and PostgreSQL (postgresql://); check WINBACK_DATABASE_URL"
        ) from None


SQLITE_PAGE_SIZE = 16_384  # bytes a page of a SQLite file winback creates (see _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # a new file's pages: 16 KiB rather than 4. A run stores its decisions in one bulk insert (561,085 rows for
    # 1M customers, 180 MB of reasons and features): bench/decisions_insert.py --features --skips 0.36 took
    # 7.2-10.6 s against 8.5-12.2 s, seven pairs alternated, each quicker. Set before WAL, which fixes the
    # size; a file that exists keeps its own
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # checkpoint every ~80 MB of WAL rather than 4 MB: a campaign's sends rewrite the same outbox pages
    # many times, and each checkpoint fsyncs. A small gain, about the size of the noise: bench/send_rate.py
    # gave 112-128 µs a message against 119-144 with SQLite's default of 1,000 pages
    cursor.execute("PRAGMA wal_autocheckpoint=20000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """A process-wide engine per URL: flows and the CLI share one pool."""
    return make_engine(url)


def session_factory(url: str) -> sessionmaker[Session]:
    """The sessionmaker for a URL."""
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """`with transaction(url) as session:` commits on success, rolls back on error."""
    with session_factory(url).begin() as session:
        yield session


def error_line(exc: BaseException) -> str:
    """The first line of what went wrong, safe to log.

    For a database error the driver's own message, never the statement or its parameters (addresses
    among them) nor PostgreSQL's DETAIL line quoting values.
    """
    from sqlalchemy.exc import StatementError

    orig = exc.orig if isinstance(exc, StatementError) else None
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
