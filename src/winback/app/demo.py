"""`winback demo`: the whole product on a realistic warehouse, in one command, on embedded DuckDB and SQLite.

The demo knows the truth it simulated, so the report's measured lift and its confidence interval can be
checked against it. By default the effect of contact differs by customer (`demo_data.effects`: persuadables,
sure things, lost causes, sleeping dogs), earlier campaigns are replayed first so the uplift model has
holdouts to learn from (`demo_history`), and the uplift policy is compared with the constant-lift policy
on the simulation's truth. With `true_lift`, contact raises everyone's return probability by that much
instead, and there is no history.

It builds the state database the CLI uses by default (winback.db in the working directory, or the SQLite
file WINBACK_DATABASE_URL names) and the shop's warehouse beside it, a DuckDB file (`winback-warehouse.duckdb`,
`demo-warehouse.duckdb` beside `demo.db`) where the CLI finds it unasked, so the commands it suggests at the end
work as typed. The warehouse is written only through `demo_data.writable` and read only by the flows, as a
customer's would be. A file that holds anything but an earlier demo is never replaced.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from winback.config import CampaignConfig, Economics
from winback.errors import ConfigError, StateError
from winback.settings import Settings, demo_warehouse_file

DEFAULT_AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
DEMO_TABLE = "demo_truth"  # only the demo generator makes it: a warehouse holding it is an earlier demo's
DEMO_CAMPAIGN = "demo-winback"  # every run the demo makes is of this campaign


def demo_config() -> CampaignConfig:
    """The campaign the demo runs: a fixed budget and holdout, contacting only where the gain is worth it."""
    # a contact must be expected to gain a quarter (of its margin) at least: what an email costs in list fatigue
    economics = Economics(min_expected_gain=0.25)
    return CampaignConfig(campaign_id=DEMO_CAMPAIGN, budget=20_000.0, holdout_share=0.2, economics=economics)


def demo_database(settings: Settings, database: Path | None) -> Path:
    """The SQLite file the demo (re)builds: `database` if given, else the one the CLI uses by default."""
    from winback.app.commands.common import sqlite_file

    if database is not None:
        return database
    file = sqlite_file(settings.database_url)
    if file is None:
        raise ConfigError(
            "winback demo builds a SQLite file and WINBACK_DATABASE_URL names another database: "
            "pass --database demo.db (then set WINBACK_DATABASE_URL=sqlite:///demo.db to explore it)"
        )
    return file


def demo_warehouse(database: Path) -> Path:
    """The DuckDB file the demo builds beside its state `database`, where the CLI looks for it."""
    beside = demo_warehouse_file(f"sqlite:///{database}")
    if beside is None:
        raise ConfigError(f"{database}: the demo's state must be a SQLite file")
    return beside


def refuse_non_demo_warehouse(warehouse: Path) -> None:
    """A DuckDB file holding tables but no `demo_truth` is someone's warehouse: the demo must not delete it."""
    import duckdb

    if not warehouse.exists() or warehouse.stat().st_size == 0:
        return
    try:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            tables = {name for (name,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    except duckdb.Error as exc:
        raise StateError(f"{warehouse} is not a DuckDB database ({exc}): the demo will not replace it") from None
    if tables and DEMO_TABLE not in tables:
        raise StateError(
            f"{warehouse} holds tables that are not an earlier demo's ({', '.join(sorted(tables)[:3])}): the demo "
            "rebuilds its warehouse from scratch, so pass --database demo.db (or move that file away)"
        )


def refuse_non_demo_database(database: Path) -> None:
    """A file holding rows that are not an earlier demo's is someone's work: the demo must not delete it.

    An empty database (just `winback db upgrade`d, say) and an earlier demo's are rebuilt. An earlier demo's
    state holds runs of the demo's campaign only (the shop's tables, `demo_truth` among them, are in the
    warehouse beside it; a demo from before the warehouse moved out kept them in this file).
    """
    import sqlite3
    from contextlib import closing

    if not database.exists() or database.stat().st_size == 0:
        return
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if DEMO_TABLE in tables:
                return
            if "wb_campaigns" in tables:
                campaigns = {name for (name,) in conn.execute("SELECT id FROM wb_campaigns")}
                if campaigns == {DEMO_CAMPAIGN}:
                    return
            rows = {t: conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables}
            holding = [t for t, row in rows.items() if row is not None and t != "alembic_version"]
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{database} is not a SQLite database ({exc}): the demo will not replace it") from None
    if holding:
        raise StateError(
            f"{database} holds data that is not an earlier demo's ({', '.join(holding[:3])}): the demo rebuilds "
            "its database from scratch, so pass --database demo.db (or move that file away)"
        )


def run_demo(
    console: Console,
    *,
    customers: int,
    true_lift: float | None,
    out: Path,
    database: Path,
    seed: int = 7,
    default_database: bool = True,
) -> dict[str, Any]:
    """Build the warehouse, run and resend the campaign, simulate 30 days, track, report, say what next.

    `database`: winback's state (SQLite); the shop's warehouse is the DuckDB file beside it (`demo_warehouse`).
    `default_database`: `database` is the one the CLI opens by default (else the last lines say how to
    point the CLI at it).
    """
    from winback.app.commands.common import run_flow
    from winback.app.commands.report import print_overall
    from winback.app.demo_data import generate_demo_warehouse, simulate_campaign_response
    from winback.app.demo_data.writable import demo_source_writer
    from winback.flows.campaign import winback_campaign
    from winback.flows.dispatch import dispatch_outbox
    from winback.flows.report import retention_report
    from winback.flows.track import track_returns
    from winback.warehouse.db import make_engine
    from winback.warehouse.lookups import contacted_customer
    from winback.warehouse.migrate import upgrade
    from winback.warehouse.source import SourceTables

    warehouse = demo_warehouse(database)
    refuse_non_demo_database(database)
    refuse_non_demo_warehouse(warehouse)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    for suffix in ("", ".wal"):
        Path(f"{warehouse}{suffix}").unlink(missing_ok=True)
    url, warehouse_url = f"sqlite:///{database}", f"duckdb:///{warehouse}"
    urls = {"database_url_override": url, "warehouse_url_override": warehouse_url}
    # the flows read the sink's path from the environment when they start: the demo's journal is its own
    os.environ.setdefault("WINBACK_SINK_PATH", str(out / "outbox_sink.jsonl"))
    Path(os.environ["WINBACK_SINK_PATH"]).unlink(missing_ok=True)
    started = time.perf_counter()
    engine = make_engine(url)
    upgrade(url, engine=engine)
    as_of = DEFAULT_AS_OF
    config = demo_config()

    with console.status("building the demo warehouse"), demo_source_writer(engine, warehouse_url) as shop:
        data = generate_demo_warehouse(shop, customers=customers, seed=seed, as_of=as_of, replace=True)
    console.print(
        f"[bold]warehouse[/bold] {data.customers:,} customers, {data.orders:,} orders, "
        f"{data.service_failures:,} service failures ({warehouse}, read only from here on; winback's state: {database})"
    )
    if true_lift is None:  # earlier campaigns first: their holdouts are what the uplift model learns from
        from winback.app.demo_history import run_past_campaigns

        with console.status("replaying earlier campaigns"):
            run_past_campaigns(console, engine, config, as_of, url=url, seed=seed, warehouse_url=warehouse_url)
    with console.status("running the campaign"):
        result = run_flow(winback_campaign, config=config, as_of=as_of, now=as_of, **urls)
    console.print(
        f"[bold]campaign[/bold] {config.campaign_id} run {result['run_id']}: decisions {result.get('decisions')}, "
        f"offers {result['offers_issued']}, messages queued {result['messages_queued']}"
    )
    console.print(f"[bold]sent[/bold] now: {result.get('sending')}")
    # the next day, daytime in every zone
    later = run_flow(dispatch_outbox, now=as_of + dt.timedelta(days=1, hours=8), **urls)
    console.print(f"[bold]sent[/bold] after quiet hours: {later}")
    again = run_flow(winback_campaign, config=config, as_of=as_of, now=as_of, **urls)
    console.print(
        f"[bold]re-run[/bold] of the same date: messages queued {again['messages_queued']}, "
        f"sent {again.get('sending', {}).get('sent', 0)} (nothing twice)"
    )

    with demo_source_writer(engine, warehouse_url) as shop:
        if true_lift is None:
            from winback.app.demo_data import simulate_heterogeneous_response

            response = simulate_heterogeneous_response(
                engine, result["run_id"], window_days=config.attribution_days, seed=seed + 4, warehouse=shop
            )
        else:
            response = simulate_campaign_response(
                engine, result["run_id"], window_days=config.attribution_days, true_lift=true_lift, seed=seed + 4,
                warehouse=shop,
            )  # fmt: skip
    closed = as_of + dt.timedelta(days=config.attribution_days + 1)
    run_flow(
        track_returns,
        run_id=result["run_id"],
        window_days=config.attribution_days,
        now=closed,
        **urls,
    )
    effect = response.true_ate
    note = f"Demo truth: contact raises the 30-day return probability by {effect * 100:+.1f} pp on average (simulated)."
    if true_lift is None:
        src = SourceTables.from_settings(Settings(), database_url=url, warehouse_url=warehouse_url)
        _print_policy_truth(console, engine, config, result["run_id"], as_of, src)
    report = run_flow(
        retention_report,
        config=config,
        run_id=result["run_id"],
        out_dir=str(out),
        notes=[note],
        **urls,
    )
    overall = report["overall"][0]
    print_overall(overall, report.get("window_open"), config.currency)
    inside = overall["abs_lift_low"] <= effect <= overall["abs_lift_high"]
    console.print(
        f"true simulated lift {effect * 100:+.1f} pp is "
        + ("[green]inside[/green]" if inside else "[red]outside[/red]")
        + " the 95% interval"
    )
    console.print(f"report: [bold]{out / 'report.html'}[/bold] · {time.perf_counter() - started:.1f} s")
    with engine.connect() as conn:
        example = contacted_customer(conn, result["run_id"])
    engine.dispose()
    print_next_steps(console, database, example, default_database)
    return {
        "data": data,
        "campaign": result,
        "response": response,
        "overall": overall,
        "truth_inside": inside,
        "example_customer": example,
    }


def print_next_steps(console: Console, database: Path, customer: str | None, default_database: bool) -> None:
    """The commands to type next, verbatim, on the demo's database."""
    if not default_database:
        console.print(f"next: export WINBACK_DATABASE_URL=sqlite:///{database.resolve()}", soft_wrap=True)
    console.print("next: winback report", soft_wrap=True, markup=False)
    if customer is not None:
        console.print(f"next: winback explain {customer}", soft_wrap=True, markup=False)
        console.print(f"next: winback preview {customer}", soft_wrap=True, markup=False)


def _print_policy_truth(
    console: Console, engine: Any, config: CampaignConfig, run_id: int, as_of: dt.datetime, src: Any
) -> None:
    """The simulation's truth: incremental returns per 1,000 contacts, uplift policy against constant lift."""
    from winback.app.demo_history import policy_truth

    truth = policy_truth(engine, config, run_id, as_of, src)
    console.print(
        f"[bold]truth[/bold] incremental returns per 1,000 contacts at the same budget: uplift policy "
        f"{truth.uplift_per_1000:.1f} ({truth.uplift_contacts:,} contacts), constant-lift policy "
        f"{truth.constant_per_1000:.1f} ({truth.constant_contacts:,} contacts): {truth.ratio:.2f}x"
    )
