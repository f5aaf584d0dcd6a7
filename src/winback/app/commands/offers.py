"""`winback offers`: single-use codes out to the shop, redemptions back in, and the ledger."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.app.commands.common import console, load_settings, open_database, say

app = typer.Typer(help="Coupon codes: export, redemptions, ledger.", no_args_is_help=True)


@app.command("export")
def export(
    run_id: Annotated[int, typer.Option(help="campaign run")], out: Annotated[Path, typer.Option(help="CSV file")]
) -> None:
    """Write a run's single-use codes as CSV for the shop platform."""
    from winback.offers.exchange import export_codes

    with open_database(load_settings()) as (engine, _), engine.connect() as conn:
        count = export_codes(conn, run_id, out)
    say(f"{count} codes written to {out}")


@app.command("import-redemptions")
def import_redemptions(path: Annotated[Path, typer.Argument(help="CSV with code, order_id, redeemed_at")]) -> None:
    """Mark codes redeemed from the shop's export; a file with any bad row changes nothing."""
    from winback.offers.exchange import import_redemptions as record
    from winback.offers.exchange import read_redemptions_csv

    with open_database(load_settings()) as (engine, _):
        rows = read_redemptions_csv(path)
        with engine.begin() as conn:
            result = record(conn, rows, source=str(path))
    console.print(result)


@app.command("ledger")
def ledger(campaign: Annotated[Optional[str], typer.Option(help="one campaign")] = None) -> None:  # noqa: UP045
    """Codes and money issued, redeemed, expired and open, per run (money in each campaign's currency)."""
    from winback.offers.exchange import ledger as offer_ledger
    from winback.warehouse.timeutil import utcnow

    with open_database(load_settings()) as (engine, _), engine.connect() as conn:
        frame = offer_ledger(conn, utcnow(), campaign)
    counts = [col for col in frame.columns if col not in ("campaign_id", "run_id", "as_of")]
    # a header's words one per line: a column is as wide as its longest word or value, so the ledger fits
    # 110 columns with every header in full (not "money_i…"); narrower than it needs, CSV with full headers
    headers = ["run", *("\n".join(col.split("_")) for col in counts)]
    rows = [
        [f"{r['campaign_id']}\nrun {r['run_id']}\n{r['as_of']:%Y-%m-%d}"]
        + [f"{r[c]:,.2f}" if isinstance(r[c], float) else f"{r[c]:,}" for c in counts]
        for r in frame.to_dict("records")
    ]
    widths = [
        max(len(line) for cell in (h, *(row[i] for row in rows)) for line in cell.split("\n"))
        for i, h in enumerate(headers)
    ]
    if sum(widths) + 3 * len(widths) + 1 > console.width:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(frame.columns)
        out.writerows(frame.astype(str).itertuples(index=False))
        return
    table = Table(title="Offer ledger (money in each campaign's currency)")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
