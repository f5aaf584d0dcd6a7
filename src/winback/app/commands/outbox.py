"""`winback outbox`: the messages a crash left `unknown`, listed, and re-queued only on an operator's word.

A row is `unknown` when its provider call started and its answer was lost: the provider may have it, so it
is never resent automatically (a second apology is worse than a late one). Provider events and, for
Twilio, a lookup settle most of them (`delivery.settle`); what is left waits here for a person:

    winback outbox unknown [--run-id N]                       # age, channel, campaign, masked address
    winback outbox resend --unknown --older-than 24h --yes    # back to the queue; the next dispatch sends them

Every re-queue is written to the outbox history with the command that asked for it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from winback.app.commands.common import load_settings, open_database
from winback.errors import ConfigError

outbox_app = typer.Typer(help="The outbox: messages left `unknown` by a crash, and what to do about them.",
                         no_args_is_help=True)  # fmt: skip
console = Console()

RunIdOpt = Annotated[Optional[int], typer.Option("--run-id", help="one campaign run")]  # noqa: UP045
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OPERATOR = "operator"


def parse_age(text: str) -> dt.timedelta:
    """`90s`, `30m`, `24h`, `2d` as a timedelta; anything else is a ConfigError naming the value."""
    match = _AGE.match(text)
    if not match:
        raise ConfigError(f"--older-than {text!r}: give a number and a unit, as 90s, 30m, 24h or 2d")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def human_age(age: dt.timedelta) -> str:
    """An age as an operator reads it: `45 s`, `12 min`, `5.2 h`, `3.0 d`."""
    seconds = max(age.total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _masked(channel: str, address: str) -> str:
    from winback.messages.redact import mask_email, mask_phone

    return mask_email(address) if channel == "email" else mask_phone(address)


def _rows(
    engine: Engine, run_id: int | None, older_than: dt.timedelta | None, now: dt.datetime
) -> list[dict[str, Any]]:
    from winback.warehouse import outbox_unknown

    with engine.connect() as conn:
        return outbox_unknown.unknown_rows(
            conn, run_id, since_before=now - older_than if older_than is not None else None
        )


@outbox_app.command("unknown")
def unknown(run_id: RunIdOpt = None) -> None:
    """List the messages whose sending is unknown (a crash mid-call): oldest first, addresses masked."""
    from winback.delivery.settle import UnknownPolicy
    from winback.warehouse.timeutil import utcnow

    now = utcnow()
    settings = load_settings()
    with open_database(settings) as (engine, _):
        rows = _rows(engine, run_id, None, now)
    if not rows:
        console.print("no unknown messages" + (f" in run {run_id}" if run_id is not None else ""))
        return
    wait = dt.timedelta(seconds=UnknownPolicy.from_settings(settings).operator_wait_seconds)
    table = Table("message", "run", "campaign", "channel", "to", "unknown for", "waiting on")
    for row in rows:
        age = now - row["since"]
        waiting = "an operator" if age >= wait else ("a lookup or event" if row["channel"] == "sms" else "an event")
        table.add_row(row["id"][:12], str(row["run_id"]), row["campaign_id"], row["channel"],
                      _masked(row["channel"], row["to_address"]), human_age(age), waiting)  # fmt: skip
    console.print(table)
    console.print(
        f"{len(rows)} unknown message(s): the provider may have them. Re-queue those you judge never left with "
        "`winback outbox resend --unknown --older-than 24h --yes`."
    )


@outbox_app.command("resend")
def resend(
    unknown: Annotated[bool, typer.Option("--unknown", help="re-queue `unknown` messages")] = False,
    older_than: Annotated[
        str, typer.Option("--older-than", help="only those unknown this long: 90s, 30m, 24h, 2d")
    ] = "24h",
    run_id: RunIdOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="confirm: they will be sent again")] = False,
) -> None:
    """Put `unknown` messages back in the queue (the next dispatch sends them), only with --yes."""
    from winback.warehouse import outbox_unknown
    from winback.warehouse.timeutil import utcnow

    if not unknown:
        raise ConfigError("say which messages to re-queue: --unknown")
    age = parse_age(older_than)
    now = utcnow()
    with open_database(load_settings()) as (engine, _):
        rows = _rows(engine, run_id, age, now)
        if not rows:
            console.print(f"no unknown message older than {older_than}")
            return
        if not yes:
            console.print(
                f"{len(rows)} unknown message(s) older than {older_than} would be re-queued and sent again: a customer "
                "whose message did reach the provider gets it twice. Nothing changed; add --yes to re-queue them."
            )
            raise typer.Exit(1)
        reason = f"operator: winback outbox resend --unknown --older-than {older_than} --yes"
        with engine.begin() as conn:
            moved = outbox_unknown.requeue_unknown(conn, [r["id"] for r in rows], now, OPERATOR, reason)
        console.print(
            f"re-queued {len(moved)} message(s), recorded in the outbox history; `winback dispatch` sends them"
        )
