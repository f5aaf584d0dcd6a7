"""`winback explain`, `winback preview`, `winback consent`: one customer, by id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from winback.app.commands.common import console, load_settings, money, open_database, points, say

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection, Engine

    from winback.warehouse.source import SourceTables

app = typer.Typer()

CustomerArg = Annotated[str, typer.Argument(metavar="CUSTOMER_ID", help="the customer's id in your customers table")]
NUMBERS = ("p_active ", "expected gain ")  # the parts of a decision's reason that `explain` shows as figures


@app.command("explain")
def explain(customer_id: CustomerArg) -> None:
    """Why the latest decision about a customer was made: segment, action, the figures, in words."""
    from winback.warehouse.lookups import latest_decision

    with open_database(load_settings()) as (engine, src), engine.connect() as conn:
        decision = latest_decision(conn, customer_id)
        if decision is None:
            _not_decided(conn, engine, src, customer_id, "no decision")
        from winback.segments.uplift.explain import uplift_lines

        uplift = uplift_lines(conn, decision["run_id"], customer_id)
    cur = decision["currency"]
    say(
        f"{customer_id} · campaign {decision['campaign_id']} · as of {decision['as_of']:%Y-%m-%d} · "
        f"{decision['action']} ({decision['segment']})"
    )
    words = [part for part in decision["reason"].split("; ") if not part.startswith(NUMBERS)]
    say(f"why: {'; '.join(words)}")
    figures = [
        f"p_active {decision['p_active']:.2f}" if decision["p_active"] is not None else None,
        f"customer value {money(decision['customer_value'], cur)}" if decision["customer_value"] is not None else None,
        f"expected gain {money(decision['expected_gain'], cur)}" if decision["expected_gain"] is not None else None,
        f"offer cost {money(decision['offer_cost'], cur)}" if decision["offer_cost"] is not None else None,
        f"lift assumed {points(decision['lift'])}" if decision["lift"] is not None else None,
    ]
    if any(figures):
        say("figures: " + " · ".join(f for f in figures if f))
    for line in uplift:
        say(line)


def _in_warehouse(engine: Engine, src: SourceTables, customer_id: str, is_customer: Callable[..., bool]) -> bool:
    """Whether the warehouse's customers table holds this id (read on the warehouse, not winback's state)."""
    with src.reader(engine).connect() as warehouse:
        return is_customer(warehouse, src, customer_id)


def _not_decided(conn: Connection, engine: Engine, src: SourceTables, customer_id: str, missing: str) -> None:
    """Say whether the id is not a customer at all or a customer nothing was decided about; exit 1."""
    from winback.warehouse.lookups import campaign_runs, is_customer
    from winback.warehouse.source import missing_tables

    if missing_tables(src.reader(engine), [src.customers]):
        say(f"{missing} about {customer_id!r} (and no customers table to look the id up in)")
    elif not _in_warehouse(engine, src, customer_id, is_customer):
        say(f"{customer_id!r} is not a customer: no such id in the {src.customers.fullname} table")
    elif not campaign_runs(conn):
        say(f"customer {customer_id}: {missing} yet: no campaign has run (`winback campaign`)")
    else:
        why = "in no segment when the campaigns ran (neither lapsed nor aggrieved)"
        say(f"customer {customer_id}: {missing} yet: {why}")
    raise typer.Exit(1)


@app.command("preview")
def preview(
    customer_id: Annotated[Optional[str], typer.Argument(metavar="CUSTOMER_ID", help="the customer's id")] = None,  # noqa: UP045
    customer: Annotated[Optional[str], typer.Option("--customer", hidden=True)] = None,  # noqa: UP045
) -> None:
    """Render exactly what the customer's latest message says, on every channel (its own marked)."""
    from winback.delivery.dispatch import prepare
    from winback.messages.unsubscribe import UnsubscribeLinks
    from winback.warehouse.lookups import latest_message

    chosen = customer_id or customer
    if not chosen:
        raise typer.BadParameter("give the customer's id: winback preview CUSTOMER_ID")
    settings = load_settings()
    with open_database(settings, source_tables=True) as (engine, src), engine.connect() as conn:
        row = latest_message(conn, chosen)
        if row is None:
            _not_decided(conn, engine, src, chosen, "no message")
    links = UnsubscribeLinks.from_settings(settings)
    prepared = prepare(dict(row), links=links)
    if prepared.message is None:
        reason = escape(str(getattr(prepared.outcome, "reason", "")))
        console.print(f"[yellow]not sendable on {row['channel']}:[/yellow] {reason}", soft_wrap=True)
    for channel in (row["channel"], *sorted({"email", "sms"} - {row["channel"]})):
        _show(row, channel, prepared.message if channel == row["channel"] else None, links)


def _show(row: dict[str, Any], channel: str, message: Any, links: Any) -> None:
    """One channel's rendering: what is sent on the message's own channel, what would be on the other."""
    from winback.messages.render import Brand, RenderError, build_context, render

    if message is not None:
        subject, text = message.subject, message.text
    else:
        try:
            ctx = build_context(row["context"], Brand(), links.url(row["customer_id"], channel))
            rendered = render(row["template"], channel, ctx)
        except RenderError as exc:
            console.print(f"[red]{channel}:[/red] {escape(str(exc))}", soft_wrap=True)
            return
        subject, text = rendered.subject, rendered.text
    mark = "what is sent" if channel == row["channel"] else "if sent by " + channel
    console.rule(f"{channel} · {row['template']} · {mark} · status {row['status']}")
    if subject:
        console.print(f"[bold]Subject:[/bold] {escape(subject)}", soft_wrap=True)
    console.print(text, markup=False)


@app.command("consent")
def consent(customer_id: CustomerArg) -> None:
    """A customer's consent records and opt-outs per channel, with source and time (for GDPR requests)."""
    from winback.warehouse.queries import consent_records

    with (
        open_database(load_settings(), source_tables=True) as (engine, src),
        engine.connect() as conn,
        src.reader(engine).connect() as warehouse,
    ):
        frame = consent_records(conn, src, customer_id, warehouse)
    if frame.empty:
        say(f"no consent records for customer {customer_id!r}")
        raise typer.Exit(1)
    console.print(f"[bold]Consent of {escape(customer_id)}[/bold] (channel · state · source · when · origin)")
    for row in frame.itertuples(index=False):
        say(f"{row.channel} · {row.state} · {row.source} · {row.at:%Y-%m-%d %H:%M} UTC · {row.origin}")
