"""The quarantine in winback's own database: what each run's data-quality gate set aside, for people to fix.

Stored in the transaction that stores the run's decisions, so a run never has decisions without the record
of the rows it left out (nor the reverse). Values arrive masked (`stages.quality.masked_findings`).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, delete, func, select

from winback.warehouse.bulk import insert_columns
from winback.warehouse.models import CampaignRun, QuarantinedRow
from winback.warehouse.quality import FINDING_COLUMNS
from winback.warehouse.timeutil import utcnow

_LIMITS = {"source_table": 128, "record_id": 128, "customer_id": 128, "field": 128, "scope": 8}


def store(conn: Connection, run_id: int, findings: pd.DataFrame) -> int:
    """Replace the run's quarantine with `findings` (FINDING_COLUMNS); returns how many rows it holds."""
    conn.execute(delete(QuarantinedRow).where(QuarantinedRow.run_id == run_id))
    return add(conn, run_id, findings)


def add(conn: Connection, run_id: int, findings: pd.DataFrame) -> int:
    """Add `findings` to the run's quarantine (a later stage's, e.g. names set aside when queueing)."""
    if findings.empty:
        return 0
    columns = {}
    for name in FINDING_COLUMNS:
        values = findings[name].astype(object).where(findings[name].notna(), None)
        limit = _LIMITS.get(name)
        columns[name] = [v if limit is None or v is None else str(v)[:limit] for v in values.tolist()]
    insert_columns(conn, QuarantinedRow.__table__, columns, {"run_id": run_id, "recorded_at": utcnow()})
    return len(findings)


def rows(conn: Connection, run_id: int) -> pd.DataFrame:
    """The run's quarantine, table by table in the order it was found (FINDING_COLUMNS)."""
    cols = [getattr(QuarantinedRow, c) for c in FINDING_COLUMNS]
    stmt = select(*cols).where(QuarantinedRow.run_id == run_id).order_by(QuarantinedRow.source_table, QuarantinedRow.id)
    return pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=FINDING_COLUMNS)


def counts(conn: Connection, run_id: int) -> pd.DataFrame:
    """Per source table and scope: how many rows (or values) the run set aside. Columns: source_table, scope, n."""
    stmt = (
        select(QuarantinedRow.source_table, QuarantinedRow.scope, func.count())
        .where(QuarantinedRow.run_id == run_id)
        .group_by(QuarantinedRow.source_table, QuarantinedRow.scope)
        .order_by(QuarantinedRow.source_table, QuarantinedRow.scope)
    )
    return pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=["source_table", "scope", "n"])


def latest_run_id(conn: Connection) -> int | None:
    """The newest run (of any campaign): what `winback quality` shows unless asked for another."""
    return conn.execute(select(func.max(CampaignRun.id))).scalar_one_or_none()


def summary_line(total: int, run_id: int | None) -> str:
    """The one line a campaign prints about its quarantine."""
    where = f"`winback quality --run-id {run_id}`" if run_id is not None else "not stored (dry run)"
    return f"{total:,} source row{'s' if total != 1 else ''} quarantined: {where}"
