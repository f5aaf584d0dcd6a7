"""`winback report`: the retention report of a tracked run, and its headline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from winback.app import prefect_server
from winback.app.commands.common import (
    ConfigOpt,
    campaign_config,
    console,
    load_settings,
    money,
    open_database,
    points,
    run_flow,
    say,
)
from winback.errors import StateError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from winback.config import CampaignConfig

app = typer.Typer()


@app.command("report")
def report(
    config: ConfigOpt = None,
    run_id: Annotated[Optional[int], typer.Option(help="default: the latest tracked run")] = None,  # noqa: UP045
    out: Annotated[Path, typer.Option(help="output folder")] = Path("reports_out"),
) -> None:
    """Write the retention report (HTML + CSV/JSON) and print its headline.

    Without --run-id: the latest run whose attribution window has closed and been tracked, of any campaign
    (of the --config file's campaign when one is given).
    """
    settings = load_settings()
    chosen = campaign_config(config) if config else None
    with open_database(settings) as (engine, _), engine.connect() as conn:
        run_id, notes = _run_to_report(conn, run_id, chosen.campaign_id if chosen else None)
        cfg = chosen or _stored_config(conn, run_id)
    prefect_server.start_in_background()
    from winback.flows.report import retention_report

    result = run_flow(
        retention_report,
        config=cfg,
        run_id=run_id,
        out_dir=str(out),
        notes=notes,
        database_url_override=settings.database_url,
    )
    print_overall(result["overall"][0], result.get("window_open"), cfg.currency)
    for note in result.get("notes") or ():
        say(f"note: {note}")
    say(f"report: {out / 'report.html'} (+ CSV/JSON of every table)")


def _run_to_report(conn: Connection, run_id: int | None, campaign_id: str | None) -> tuple[int, list[str]]:
    """The run named, checked to exist and be tracked; else the one a report shows by default (with why).

    Decided here, before any flow starts: when there is nothing to report, one line says so at once.
    """
    from winback.reports.build import choose_report_run, tracked_window
    from winback.warehouse.lookups import campaign_runs

    if run_id is not None:
        tracked_window(conn, run_id)  # an unknown or untracked run: one line saying which and what to do
        return run_id, []
    campaigns = campaign_runs(conn)
    wanted = [c for c in campaigns if campaign_id in (None, c.campaign_id)]
    if not wanted:
        others = f"; campaigns with runs: {', '.join(c.campaign_id for c in campaigns)}" if campaigns else ""
        of = f" of campaign {campaign_id}" if campaign_id else ""
        say(f"no runs{of} yet: run `winback campaign` (or `make demo`){others}")
        raise typer.Exit(1)
    if not any(c.tracked_runs for c in wanted):
        runs = ", ".join(
            f"{c.campaign_id} (latest run {c.latest_run_id}, as of {c.latest_as_of:%Y-%m-%d})" for c in wanted
        )
        say(f"no tracked run yet: {runs}: run `winback track` first")
        raise typer.Exit(1)
    choice = choose_report_run(conn, campaign_id)
    return choice.run_id, choice.notes


def _stored_config(conn: Connection, run_id: int) -> CampaignConfig:
    """The configuration the run's campaign was stored with (its currency, economics), else the defaults."""
    from pydantic import ValidationError

    from winback.config import CampaignConfig
    from winback.warehouse.lookups import run_campaign_config

    found = run_campaign_config(conn, run_id)
    if found is None:
        raise StateError(f"campaign run {run_id} does not exist")
    campaign_id, stored = found
    try:
        return CampaignConfig.model_validate({**stored, "campaign_id": campaign_id, "dry_run": False})
    except ValidationError:  # stored by another version of winback: its id, today's defaults
        return CampaignConfig(campaign_id=campaign_id)


def print_overall(row: dict[str, Any], window_open: str | None = None, currency: str = "EUR") -> None:
    """The headline; while the attribution window is still filling, said first, in the table's own title."""
    if window_open:
        console.print(f"[yellow]{window_open}[/yellow]")
    title = "Return so far (window still open)" if window_open else "Return within the attribution window"
    table = Table(title=title)
    for col in ("arm", "customers", "returned"):
        table.add_column(col)
    table.add_row("treated", f"{int(row['n_treated']):,}", f"{row['rate_treated']:.1%}")
    table.add_row("holdout", f"{int(row['n_holdout']):,}", f"{row['rate_holdout']:.1%}")
    console.print(table)
    say(
        f"lift {points(row['abs_lift'])} (95% CI {points(row['abs_lift_low'])[:-3]} to "
        f"{points(row['abs_lift_high'])}); incremental revenue {money(row['incremental_revenue'], currency)}; "
        f"offer cost {money(row['offer_cost'], currency)}; messaging {money(row['message_cost'], currency)}"
    )
    if isinstance(row.get("warning"), str) and row["warning"]:
        console.print("[yellow]warning:[/yellow]", row["warning"], soft_wrap=True)
