"""`winback models`: fit the customer-base models on any file; show the one the latest run used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from winback.app.commands.common import load_settings, open_database, print_json, say

app = typer.Typer(help="Customer-base models.", no_args_is_help=True)


@app.command("fit")
def fit(
    transactions: Annotated[Path, typer.Option(help="CSV of transactions, one row per order")],
    customer_id: Annotated[str, typer.Option(help="customer id column")],
    date: Annotated[str, typer.Option(help="order date column")],
    amount: Annotated[Optional[str], typer.Option(help="order value column (fits Gamma-Gamma too)")] = None,  # noqa: UP045
    calibration_end: Annotated[str | None, typer.Option(help="fit up to here, check predictions after")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Fit BG/NBD (and Gamma-Gamma) on any transaction file; with --calibration-end, check predictions."""
    from winback.segments.model_check import fit_transactions_file

    result = fit_transactions_file(transactions, customer_id, date, amount, calibration_end, freq="D", time_unit="W")
    if as_json:
        print_json(result)
    else:
        from winback.app.commands.common import console

        console.print_json(json.dumps(result, default=str))


@app.command("show")
def show(campaign: Annotated[Optional[str], typer.Option(help="campaign id")] = None) -> None:  # noqa: UP045
    """The model the latest run decided with: version, parameters, diagnostics and its calibration check."""
    from winback.warehouse.lookups import latest_model_run

    with open_database(load_settings()) as (engine, _), engine.connect() as conn:
        run = latest_model_run(conn, campaign)
    stats = (run or {}).get("stats") or {}
    if run is None or not stats.get("model"):
        say("no model yet: run a campaign first")
        raise typer.Exit(1)
    shown = {"run_id": run["id"], "campaign_id": run["campaign_id"], "as_of": str(run["as_of"])}
    print_json(shown | {"model": stats["model"], "lift_used": stats.get("lift_used"), "uplift": stats.get("uplift")})
