"""What every endpoint shares: its context, a size-limited body, the public URL, small pages, TwiML."""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from twilio.twiml.messaging_response import MessagingResponse

from winback.app.web.settings import ServerSettings

log = logging.getLogger("winback.app.server")  # one logger for the whole server, whichever module logs

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the page URL holds the token
    "X-Robots-Tag": "noindex",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


@dataclass(frozen=True)
class Context:
    """What the endpoints share: the engine, the settings and the clock."""

    engine: Engine
    settings: ServerSettings
    clock: Callable[[], dt.datetime]

    def public_url(self, request: Request) -> str:
        """The URL the provider called: the configured public base + the path and query as received."""
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        query = request.scope.get("query_string", b"").decode("latin-1")
        return f"{self.settings.public_url.rstrip('/')}{path}" + (f"?{query}" if query else "")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 413 as soon as it is known to exceed `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPException(400, "bad Content-Length") from None
        if size > limit:
            raise HTTPException(413, "request body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, "request body too large")
    return bytes(body)


def twiml(text: str | None = None) -> Response:
    """A TwiML reply to an inbound text: `text` as the answer, or an empty reply that sends nothing."""
    reply = MessagingResponse()
    if text:
        reply.message(text)
    return Response(str(reply), media_type="application/xml")


def page(title: str, body_html: str, status_code: int = 200) -> HTMLResponse:
    """A small self-contained HTML page (no scripts, not cached, not indexed) for the unsubscribe flow."""
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return HTMLResponse(doc, status_code=status_code, headers=PAGE_HEADERS)
