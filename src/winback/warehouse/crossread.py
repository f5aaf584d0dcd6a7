"""Reading the warehouse for rows of winback's state: by batches of ids, never by a join across databases.

The customer's warehouse (read only) and winback's own database may be two engines (DuckDB and SQLite,
Snowflake and PostgreSQL): a query may name tables of one of them only. Where a question needs both (the
customers of a run's decisions, the orders of its offers), winback reads its own rows first, then asks the
warehouse about those ids in chunks small enough for any engine's parameter limit, and merges in pandas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
from sqlalchemy import Connection, Select

from winback.warehouse.frames import frame_from_rows, raw_rows

CHUNK = 5_000  # ids per query: under SQLite's and every warehouse's bound-parameter limit


def by_ids(
    conn: Connection, query: Callable[[list], Select], ids: Sequence, columns: list[str], chunk: int = CHUNK
) -> pd.DataFrame:
    """The rows `query(chunk_of_ids)` returns for every chunk of `ids`, in one frame with these columns.

    Parameters
    ----------
    conn
        A connection on the warehouse.
    query
        Builds the SQLAlchemy Core select for one chunk of ids (an `IN` on the key column).
    ids
        The keys asked about (duplicates are asked once).
    columns
        The frame's column names, in the select's order.

    Returns
    -------
    pandas.DataFrame
        Every row found; an empty frame with these columns when `ids` is empty.
    """
    unique = list(dict.fromkeys(ids))
    rows: list = []
    for start in range(0, len(unique), chunk):
        rows.extend(raw_rows(conn, query(unique[start : start + chunk])))
    return frame_from_rows(rows, columns)
