"""`winback campaign`, `winback dispatch`, `winback track`: the flows, run in this process."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from winback.app import prefect_server
from winback.app.commands.common import (
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    campaign_config,
    check_channels,
    check_database,
    console,
    counts,
    load_settings,
    money,
    points,
    print_json,
    run_flow,
    say,
    utc,
)

app = typer.Typer()


@app.command("campaign")
def campaign(
    config: ConfigOpt = None,
    as_of: AsOfOpt = None,
    dry_run: Annotated[bool, typer.Option(help="decide and count what a run would do; write and send nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a win-back campaign: segment, decide, offer, message. Re-running a date resumes it."""
    settings = load_settings()
    cfg = campaign_config(config)
    check_database(settings, source_tables=True)
    if dry_run:
        cfg = cfg.model_copy(update={"dry_run": True})
    else:
        check_channels(settings)
    prefect_server.start_in_background()
    from winback.flows.campaign import winback_campaign

    result = run_flow(winback_campaign, config=cfg, as_of=utc(as_of), database_url_override=settings.database_url)
    if as_json:
        print_json(result)
    elif dry_run:
        print_dry_run(result, cfg.currency)
    else:
        print_campaign(result)


def print_campaign(result: dict[str, Any]) -> None:
    """A run's outcome in three lines (everything else, timings included, is in --json)."""
    say(f"campaign {result['campaign_id']} · run {result['run_id']} · as of {result['as_of'][:10]}")
    if result.get("decisions") is not None:
        say(f"decisions: {counts(result['decisions'])}")
    say(
        f"offers issued {result.get('offers_issued', 0):,} · messages queued {result.get('messages_queued', 0):,}"
        f" · sent now: {counts(result.get('sending') or {})}"
    )
    if result.get("quarantine"):
        say(result["quarantine"])


def print_dry_run(result: dict[str, Any], currency: str) -> None:
    """What a run would do, as tables a marketer reads: who, by which channel, which offers, what cost."""
    preview = result["dry_run"]
    say(f"Dry run: {result['campaign_id']} as of {result['as_of'][:10]} (nothing written or sent)")
    by_action = preview.get("by_segment_and_action") or {f"-/{k}": v for k, v in preview["decisions"].items()}
    table = Table(title="Decisions by segment and action", title_justify="left")
    for col, justify in (("segment", "left"), ("action", "left"), ("customers", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for key, n in sorted(by_action.items()):
        segment, action = key.split("/", 1)
        table.add_row(segment, action, f"{n:,}")
    table.add_row("all", "all", f"{sum(preview['decisions'].values()):,}", style="bold")
    console.print(table)
    contacts = Table(title="Contacts by segment and channel", title_justify="left")
    for col, justify in (("segment", "left"), ("channel", "left"), ("customers", "right")):
        contacts.add_column(col, justify=justify)  # type: ignore[arg-type]
    for key, n in sorted(preview["contacts_by_segment_and_channel"].items()):
        segment, channel = key.split("/", 1)
        contacts.add_row(segment, channel, f"{n:,}")
    console.print(contacts)
    offers = Table(title="Offers by kind", title_justify="left")
    offers.add_column("kind")
    offers.add_column("codes", justify="right")
    offers.add_column("lift assumed", justify="right")
    lifts = preview.get("lift_used") or {}
    for kind, n in sorted(preview["offers"].items()):
        offers.add_row(kind, f"{n:,}", points(lifts.get(kind)))
    console.print(offers)
    say(
        f"expected offer cost {money(preview['offer_cost'], currency)} of the {money(preview['budget'], currency)} "
        "budget"
    )
    if result.get("quarantine"):
        say(result["quarantine"])


@app.command("dispatch")
def dispatch(now: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Send every due message (quiet hours over, retries due), across campaigns."""
    settings = load_settings()
    check_database(settings, source_tables=True)
    check_channels(settings)
    prefect_server.start_in_background()
    from winback.flows.dispatch import dispatch_outbox

    result = run_flow(dispatch_outbox, now=utc(now), database_url_override=settings.database_url)
    if as_json:
        print_json(result)
        return
    numbers = {k: v for k, v in result.items() if isinstance(v, int | float)}
    say(f"dispatch: {counts(numbers)}" if numbers else "dispatch: nothing was due")
    for error in result.get("crm_event_errors") or ():
        say(f"  {error}")


@app.command("track")
def track(
    run_id: Annotated[Optional[int], typer.Option(help="one run; default: every recent run")] = None,  # noqa: UP045
    window_days: Annotated[int, typer.Option(help="attribution window", min=1)] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Mark who ordered again within the attribution window, treated and holdout alike."""
    settings = load_settings()
    check_database(settings, source_tables=True)
    prefect_server.start_in_background()
    from winback.flows.track import track_returns

    url = settings.database_url
    result = run_flow(track_returns, run_id=run_id, window_days=window_days, database_url_override=url)
    if as_json:
        print_json(result)
        return
    if not result["tracked"]:
        say(f"no run inside (or a week past) a {window_days}-day attribution window: nothing to track")
    for tracked_run, customers in result["tracked"].items():
        say(f"tracked run {tracked_run}: {customers:,} customers")
