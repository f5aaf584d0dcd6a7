"""The `winback` command: every job as a subcommand; flows run ephemerally unless PREFECT_API_URL is set."""

from __future__ import annotations

from winback.app.runtime import configure_prefect_environment

configure_prefect_environment()

import datetime as dt  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

app = typer.Typer(help="winback: win back lapsed and aggrieved customers, and prove it worked.", no_args_is_help=True)
db_app = typer.Typer(help="winback's own tables.", no_args_is_help=True)
models_app = typer.Typer(help="Customer-base models.", no_args_is_help=True)
offers_app = typer.Typer(help="Coupon codes: export, redemptions, ledger.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(offers_app, name="offers")
from winback.app.commands.uplift import uplift_app  # noqa: E402

app.add_typer(uplift_app, name="uplift")
console = Console()

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="campaign YAML (see examples/)")]  # noqa: UP045
AsOfOpt = Annotated[Optional[dt.datetime], typer.Option("--as-of", help="decision time (UTC); default now")]  # noqa: UP045


def _config(path: Path | None):  # type: ignore[no-untyped-def]
    from winback.app.campaign_file import load_campaign

    try:
        return load_campaign(path)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def main() -> None:
    """The console script: a failure it can name is one line and exit code 2, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        app()
    except (ValueError, OSError, SQLAlchemyError) as exc:
        console.print(f"[red]error:[/red] {_one_line(exc)}")
        raise SystemExit(2) from None


def _one_line(exc: BaseException) -> str:
    """The driver's own message for a database error (not the statement), with what to do about it."""
    from winback.warehouse.db import error_line

    first = error_line(exc)
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        first += ": run `winback db upgrade`, and check WINBACK_SOURCE_MAPPING names your tables"
    return first


def _ready_database(source_tables: bool = False) -> None:
    """Refuse to work on a database winback has not set up, before any flow starts (and retries).

    `source_tables`: the business's tables (as WINBACK_SOURCE_MAPPING names them) must be there too.
    """
    from sqlalchemy.engine import make_url

    from winback.warehouse.db import database_url, make_engine
    from winback.warehouse.migrate import current, head
    from winback.warehouse.source import SourceMapping, SourceTables, missing_tables

    url = database_url()
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(file).exists():
        raise ValueError(f"no SQLite database at {file}: check WINBACK_DATABASE_URL, or create it with "
                         "`winback db upgrade`")  # fmt: skip
    engine = make_engine(url)
    try:
        at, latest = current(url, engine=engine), head()
        if at != latest:
            raise ValueError(f"winback's tables are at revision {at or 'none'}, not {latest}: run `winback db upgrade`")
        if source_tables:
            src = SourceTables(SourceMapping.configured())
            missing = missing_tables(engine, (src.customers, src.orders, src.failures, src.consents))
            if missing:
                hint = "set WINBACK_SOURCE_MAPPING to name your tables (see examples/), or run `winback demo-data`"
                raise ValueError(f"source table(s) not found: {', '.join(missing)}: {hint}")
    finally:
        engine.dispose()


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    from winback.warehouse.timeutil import utc

    return utc(value) if value else None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate winback's tables (Alembic) in WINBACK_DATABASE_URL."""
    from winback.warehouse.migrate import current, upgrade

    upgrade()
    console.print(f"winback tables at revision [bold]{current()}[/bold]")


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(help="how many customers")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    as_of: AsOfOpt = None,
) -> None:
    """Build a realistic demo warehouse (source tables) in WINBACK_DATABASE_URL, replacing any earlier one."""
    from winback.app.demo import DEFAULT_AS_OF
    from winback.app.demo_data import generate_demo_warehouse
    from winback.warehouse.db import make_engine

    summary = generate_demo_warehouse(
        make_engine(), customers=customers, seed=seed, as_of=_utc(as_of) or DEFAULT_AS_OF, replace=True
    )
    console.print(summary)


@app.command("campaign")
def campaign(config: ConfigOpt = None, as_of: AsOfOpt = None, dry_run: bool = False) -> None:
    """Run a win-back campaign: segment, decide, offer, message. Re-running a date resumes it."""
    _ready_database(source_tables=True)
    from winback.flows.campaign import winback_campaign

    cfg = _config(config)
    if dry_run:
        cfg = cfg.model_copy(update={"dry_run": True})
    result = winback_campaign(config=cfg, as_of=_utc(as_of))
    console.print_json(json.dumps(result, default=str))


@app.command("dispatch")
def dispatch(now: AsOfOpt = None) -> None:
    """Send every due message (quiet hours over, retries due), across campaigns."""
    _ready_database(source_tables=True)
    from winback.flows.dispatch import dispatch_outbox

    console.print_json(json.dumps(dispatch_outbox(now=_utc(now)), default=str))


@app.command("track")
def track(
    run_id: Annotated[Optional[int], typer.Option(help="one run; default: every recent run")] = None,  # noqa: UP045
    window_days: Annotated[int, typer.Option(help="attribution window", min=1)] = 30,
) -> None:
    """Mark who ordered again within the attribution window, treated and holdout alike."""
    _ready_database(source_tables=True)
    from winback.flows.track import track_returns

    console.print_json(json.dumps(track_returns(run_id=run_id, window_days=window_days), default=str))


@app.command("report")
def report(
    config: ConfigOpt = None,
    run_id: Annotated[Optional[int], typer.Option(help="default: the campaign's latest run")] = None,  # noqa: UP045
    out: Annotated[Path, typer.Option(help="output folder")] = Path("reports_out"),
) -> None:
    """Write the retention report (HTML + CSV/JSON) and print its headline."""
    _ready_database()
    from winback.flows.report import retention_report

    result = retention_report(config=_config(config), run_id=run_id, out_dir=str(out))
    print_overall(result["overall"][0], result.get("window_open"))
    for note in result.get("notes") or ():
        console.print(f"note: {note}")
    console.print(f"report: [bold]{out / 'report.html'}[/bold] (+ CSV/JSON of every table)")


def print_overall(row: dict, window_open: str | None = None) -> None:
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
    console.print(
        f"lift {row['abs_lift'] * 100:+.1f} pp (95% CI {row['abs_lift_low'] * 100:+.1f} to "
        f"{row['abs_lift_high'] * 100:+.1f}); incremental revenue {row['incremental_revenue']:,.2f}; "
        f"offer cost {row['offer_cost']:,.2f}; messaging {row['message_cost']:,.2f}"
    )
    if isinstance(row.get("warning"), str) and row["warning"]:
        console.print(f"[yellow]warning:[/yellow] {row['warning']}")


@app.command("explain")
def explain(customer_id: str) -> None:
    """Print the latest decision about a customer, with its reason."""
    _ready_database()
    from sqlalchemy import select

    from winback.warehouse.db import make_engine
    from winback.warehouse.models import CampaignRun, Decision

    with make_engine().connect() as conn:
        d = (
            conn.execute(
                select(Decision.__table__, CampaignRun.campaign_id, CampaignRun.as_of)
                .join(CampaignRun, CampaignRun.id == Decision.run_id)
                .where(Decision.customer_id == customer_id)
                .order_by(CampaignRun.as_of.desc(), Decision.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    if d is None:
        console.print(f"no decision about customer {customer_id!r} yet")
        raise typer.Exit(1)
    console.print(
        f"[bold]{customer_id}[/bold] in campaign {d['campaign_id']} as of {d['as_of']:%Y-%m-%d}: "
        f"[bold]{d['action']}[/bold] ({d['segment']})\n{d['reason']}"
    )
    from winback.segments.uplift.explain import uplift_lines

    with make_engine().connect() as conn:
        for line in uplift_lines(conn, d["run_id"], customer_id):
            console.print(line, markup=False, highlight=False)


@models_app.command("fit")
def models_fit(
    transactions: Annotated[Path, typer.Option(help="CSV of transactions, one row per order")],
    customer_id: Annotated[str, typer.Option(help="customer id column")],
    date: Annotated[str, typer.Option(help="order date column")],
    amount: Annotated[Optional[str], typer.Option(help="order value column (fits Gamma-Gamma too)")] = None,  # noqa: UP045
    calibration_end: Annotated[str | None, typer.Option(help="fit up to here, check predictions after")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Fit BG/NBD (and Gamma-Gamma) on any transaction file; with --calibration-end, check predictions."""
    from winback.segments.model_check import fit_transactions_file

    try:
        result = fit_transactions_file(
            transactions, customer_id, date, amount, calibration_end, freq="D", time_unit="W"
        )
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        console.print_json(json.dumps(result, default=str))


@offers_app.command("export")
def offers_export(
    run_id: Annotated[int, typer.Option(help="campaign run")], out: Annotated[Path, typer.Option(help="CSV file")]
) -> None:
    """Write a run's single-use codes as CSV for the shop platform."""
    _ready_database()
    from winback.offers.exchange import export_codes
    from winback.warehouse.db import make_engine

    with make_engine().connect() as conn:
        count = export_codes(conn, run_id, out)
    console.print(f"{count} codes written to {out}")


@offers_app.command("import-redemptions")
def offers_import(path: Annotated[Path, typer.Argument(help="CSV with code, order_id, redeemed_at")]) -> None:
    """Mark codes redeemed from the shop's export; a file with any bad row changes nothing."""
    _ready_database()
    from winback.offers.exchange import import_redemptions, read_redemptions_csv
    from winback.warehouse.db import make_engine

    try:
        rows = read_redemptions_csv(path)
        with make_engine().begin() as conn:
            result = import_redemptions(conn, rows, source=str(path))
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(result)


@offers_app.command("ledger")
def offers_ledger(campaign: Annotated[Optional[str], typer.Option(help="one campaign")] = None) -> None:  # noqa: UP045
    """Codes and money issued, redeemed, expired and open, per run."""
    _ready_database()
    from winback.offers.exchange import ledger
    from winback.warehouse.db import make_engine
    from winback.warehouse.timeutil import utcnow

    with make_engine().connect() as conn:
        frame = ledger(conn, utcnow(), campaign)
    table = Table(title="Offer ledger")
    for col in frame.columns:
        table.add_column(col)
    for row in frame.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console.print(table)


@app.command("consent")
def consent(customer_id: str) -> None:
    """A customer's consent records and opt-outs per channel, with source and time (for GDPR requests)."""
    _ready_database(source_tables=True)
    from winback.warehouse.db import make_engine
    from winback.warehouse.queries import consent_records
    from winback.warehouse.source import SourceMapping, SourceTables

    with make_engine().connect() as conn:
        frame = consent_records(conn, SourceTables(SourceMapping.configured()), customer_id)
    if frame.empty:
        console.print(f"no consent records for customer {customer_id!r}")
        raise typer.Exit(1)
    console.print(f"[bold]Consent of {customer_id}[/bold] (channel · state · source · when · origin)")
    for row in frame.itertuples(index=False):
        console.print(f"{row.channel} · {row.state} · {row.source} · {row.at:%Y-%m-%d %H:%M} UTC · {row.origin}",
                      soft_wrap=True)  # fmt: skip


@models_app.command("show")
def models_show(campaign: Annotated[Optional[str], typer.Option(help="campaign id")] = None) -> None:  # noqa: UP045
    """The model the latest run decided with: version, parameters, diagnostics and its calibration check."""
    _ready_database()
    from sqlalchemy import select

    from winback.warehouse.db import make_engine
    from winback.warehouse.models import CampaignRun

    stmt = select(CampaignRun.id, CampaignRun.campaign_id, CampaignRun.as_of, CampaignRun.stats).where(
        CampaignRun.journey_key == ""
    )
    if campaign:
        stmt = stmt.where(CampaignRun.campaign_id == campaign)
    with make_engine().connect() as conn:
        row = conn.execute(stmt.order_by(CampaignRun.as_of.desc()).limit(1)).first()
    if row is None or not (row.stats or {}).get("model"):
        console.print("no model yet: run a campaign first")
        raise typer.Exit(1)
    shown = {"run_id": row.id, "campaign_id": row.campaign_id, "as_of": str(row.as_of)}
    shown |= {"model": row.stats["model"], "lift_used": row.stats.get("lift_used"), "uplift": row.stats.get("uplift")}
    typer.echo(json.dumps(shown, indent=2))


@app.command("preview")
def preview(customer: Annotated[str, typer.Option(help="customer id")]) -> None:
    """Render exactly what the customer's latest message says, on every channel (its own marked)."""
    _ready_database(source_tables=True)
    from sqlalchemy import select

    from winback.delivery.dispatch import prepare
    from winback.messages.render import Brand, RenderError, build_context, render
    from winback.messages.unsubscribe import unsubscribe_url
    from winback.warehouse.db import make_engine
    from winback.warehouse.models import OutboxMessage

    with make_engine().connect() as conn:
        row = (
            conn.execute(
                select(OutboxMessage.__table__)
                .where(OutboxMessage.customer_id == customer)
                .order_by(OutboxMessage.created_at.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    if row is None:
        console.print(f"no message for customer {customer!r} yet: run a campaign first")
        raise typer.Exit(1)
    prepared = prepare(dict(row))
    if prepared.message is None:
        console.print(f"[yellow]not sendable on {row['channel']}:[/yellow] {getattr(prepared.outcome, 'reason', '')}")
    for channel in (row["channel"], *({"email", "sms"} - {row["channel"]})):
        if channel == row["channel"] and prepared.message is not None:
            subject, text = prepared.message.subject, prepared.message.text
        else:
            try:
                ctx = build_context(row["context"], Brand(), unsubscribe_url(customer, channel))
                rendered = render(row["template"], channel, ctx)
            except RenderError as exc:
                console.print(f"[red]{channel}: {exc}[/red]")
                continue
            subject, text = rendered.subject, rendered.text
        mark = "what is sent" if channel == row["channel"] else "if sent by " + channel
        console.rule(f"{channel} · {row['template']} · {mark} · status {row['status']}")
        if subject:
            console.print(f"[bold]Subject:[/bold] {subject}")
        console.print(text)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
) -> None:
    """Webhooks (SendGrid, Twilio), one-click unsubscribe and the CRM intake, as one ASGI app."""
    _ready_database()
    from winback.app.server import serve as run_server

    run_server(host, port)


@app.command("demo")
def demo(
    customers: Annotated[int, typer.Option(help="demo warehouse size")] = 20_000,
    true_lift: Annotated[Optional[float], typer.Option(help="one true effect for all (default: varied)")] = None,  # noqa: UP045
    out: Annotated[Path, typer.Option(help="report folder")] = Path("demo_out"),
    database: Annotated[Path, typer.Option(help="SQLite file, rebuilt each time")] = Path("winback-demo.db"),
) -> None:
    """Build a demo warehouse, run a full campaign, simulate the next 30 days, track returns, report."""
    from winback.app.demo import run_demo

    run_demo(console, customers=customers, true_lift=true_lift, out=out, database=database)


if __name__ == "__main__":
    app()
