"""The one writable engine on a warehouse: for the demo's source tables and nothing else.

winback reads the business's warehouse read only (`warehouse.readonly`). Only two things ever write there, both
building the demo's made-up shop: `winback demo` (its DuckDB file beside the SQLite state) and
`winback demo-data --to-warehouse`. They get their engine here, so a search for who writes to a warehouse
ends in this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from winback.warehouse.db import make_engine
from winback.warehouse.readonly import normalised_url, warehouse_engine_for


@contextmanager
def writable_warehouse(url: str) -> Iterator[Engine]:
    """A read-write engine on the warehouse at `url`, disposed (and DuckDB's file let go) on leaving.

    This process's read-only engine on the same URL is disposed first: DuckDB refuses a writer while the
    process holds the file read only, and the readers must see what was written when they next connect.

    Parameters
    ----------
    url
        The warehouse's SQLAlchemy URL (`duckdb:///file.duckdb`, `sqlite:///...`, `postgresql://...`).

    Yields
    ------
    Engine
        For DuckDB without a pool, so that nothing holds the file once the block is left.
    """
    warehouse_engine_for(url).dispose()
    url = normalised_url(url)
    if url.startswith("duckdb"):
        engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
    else:
        engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def demo_source_writer(state: Engine, warehouse_url: str | None) -> Iterator[Engine]:
    """The engine the demo writes its source tables with: the warehouse's when apart from the state, else `state`."""
    if warehouse_url is None:
        yield state
        return
    with writable_warehouse(warehouse_url) as engine:
        yield engine
