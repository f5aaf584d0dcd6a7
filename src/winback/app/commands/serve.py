"""`winback serve`: the webhooks, unsubscribe pages and CRM intake."""

from __future__ import annotations

from typing import Annotated

import typer

from winback.app.commands.common import check_database, load_settings

app = typer.Typer()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
) -> None:
    """Webhooks (SendGrid, Twilio), one-click unsubscribe and the CRM intake, as one ASGI app."""
    settings = load_settings()
    check_database(settings)
    from winback.app.server import serve as run_server

    run_server(settings, host, port)
