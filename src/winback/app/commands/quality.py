"""`winback quality`: what a run's data-quality gate quarantined, to read here or to export and fix at the source.

Each row names the source table, the record, the field, its value (masked where it is personal data) and the
problem; scope "row" means the row was not used at all, "field" that only that value was set aside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from winback.app.commands.common import load_settings, open_database

SHOWN = 50  # rows printed; --csv writes them all
console = Console()


def quality(
    run_id: Annotated[Optional[int], typer.Option(help="the run; default: the latest")] = None,  # noqa: UP045
    csv: Annotated[Optional[Path], typer.Option("--csv", help="write every quarantined row to this CSV")] = None,  # noqa: UP045
) -> None:
    """List the source rows a run quarantined (table, record, field, value, problem), or write them as CSV."""
    from winback.warehouse import quarantine

    with open_database(load_settings()) as (engine, _), engine.connect() as conn:  # at the latest revision
        run = run_id if run_id is not None else quarantine.latest_run_id(conn)
        if run is None:
            console.print("no campaign runs yet: run a campaign first")
            raise typer.Exit(1)
        frame = quarantine.rows(conn, run)
        counts = quarantine.counts(conn, run)
    console.print(quarantine.summary_line(len(frame), run).split(":", 1)[0] + f" in run {run}")
    for row in counts.itertuples(index=False):
        kind = "rows not used" if row.scope == "row" else "values set aside"
        console.print(f"  {row.source_table}: {row.n:,} {kind}")
    if csv is not None:
        frame.to_csv(csv, index=False)
        console.print(f"{len(frame):,} rows written to [bold]{csv}[/bold]")
        return
    if frame.empty:
        return
    table = Table(title=f"Quarantine of run {run}")
    for col in ("source_table", "record_id", "field", "value", "problem"):
        table.add_column(col.replace("_", " "), overflow="fold")
    for rec in frame.head(SHOWN).itertuples(index=False):
        table.add_row(*(("" if v is None else str(v)) for v in (rec.source_table, rec.record_id, rec.field, rec.value,
                                                                  rec.problem)))  # fmt: skip
    console.print(table)
    if len(frame) > SHOWN:
        console.print(f"… and {len(frame) - SHOWN:,} more: `winback quality --run-id {run} --csv quarantine.csv`")
