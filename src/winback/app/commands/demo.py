"""`winback demo` (everything, on a demo database) and `winback demo-data` (the demo's source tables only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from winback.app import prefect_server
from winback.app.commands.common import (
    AsOfOpt,
    check_channels,
    console,
    load_settings,
    open_database,
    sqlite_file,
    utc,
)

app = typer.Typer()


@app.command("demo")
def demo(
    customers: Annotated[int, typer.Option(help="demo warehouse size")] = 20_000,
    true_lift: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="one true effect of contact on return probability for all (default: varied per customer)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="report folder")] = Path("demo_out"),
    database: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="SQLite file, rebuilt each time; default: the CLI's own (winback.db, or WINBACK_DATABASE_URL's)"
        ),
    ] = None,
) -> None:
    """Build a demo warehouse, run a full campaign, simulate the next 30 days, track returns, report."""
    from winback.app.demo import demo_database, run_demo

    settings = load_settings()
    check_channels(settings)
    file = demo_database(settings, database)
    prefect_server.start_in_background()  # up while the demo's warehouse is built
    default = sqlite_file(settings.database_url)
    is_default = default is not None and default.resolve() == file.resolve()
    run_demo(console, customers=customers, true_lift=true_lift, out=out, database=file, default_database=is_default)


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(help="how many customers")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    as_of: AsOfOpt = None,
    to_warehouse: Annotated[
        bool,
        typer.Option(
            "--to-warehouse",
            help="write them to WINBACK_WAREHOUSE_URL, which winback otherwise only reads (this command alone may)",
        ),
    ] = False,
) -> None:
    """Build the demo's source tables in winback's database, or with --to-warehouse in the warehouse."""
    from sqlalchemy.engine import make_url

    from winback.app.demo import DEFAULT_AS_OF
    from winback.app.demo_data import generate_demo_warehouse
    from winback.app.demo_data.writable import writable_warehouse
    from winback.errors import ConfigError
    from winback.warehouse.readonly import normalised_url

    settings = load_settings()
    when = utc(as_of) or DEFAULT_AS_OF
    if not settings.separate_warehouse:
        with open_database(settings, migrated=False) as (engine, _):
            summary = generate_demo_warehouse(engine, customers=customers, seed=seed, as_of=when, replace=True)
        console.print(summary)
        return
    where = make_url(normalised_url(settings.warehouse_url)).render_as_string(hide_password=True)
    if not to_warehouse:
        raise ConfigError(
            f"the warehouse at {where} is read only to winback: pass --to-warehouse to write the demo's "
            "source tables there (the one command that may)"
        )
    console.print(f"writing the demo's source tables to the warehouse at {where} (the one command that writes there)")
    with writable_warehouse(settings.warehouse_url) as engine:
        summary = generate_demo_warehouse(engine, customers=customers, seed=seed, as_of=when, replace=True)
    console.print(summary)
