"""GET|HEAD|POST /unsubscribe/{token}: RFC 8058 one-click unsubscribe, and a page for people.

The link's signed token says which customer and channel; only POST changes anything, because link
scanners and prefetchers follow GETs.
"""

from __future__ import annotations

import html

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from winback.app.web.base import Context, log, page, read_body
from winback.warehouse.suppressions import suppress, suppress_address

CHANNELS = ("email", "sms")
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"


def _invalid() -> Response:
    return PlainTextResponse(
        "This unsubscribe link is not valid.", status_code=400, headers={"Cache-Control": "no-store"}
    )


def _channel_words(channel: str) -> str:
    return "emails" if channel == "email" else "text messages"


class UnsubscribePages:
    """The confirmation page (GET/HEAD) and the unsubscribe itself (POST)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.brand = ctx.settings.brand_name

    def _token(self, request: Request) -> tuple[str, str] | Response:
        try:
            customer_id, channel = self.ctx.settings.unsubscribe.read(request.path_params["token"])
        except ValueError:
            return _invalid()
        return (customer_id, channel) if channel in CHANNELS else _invalid()

    async def confirm(self, request: Request) -> Response:
        """GET/HEAD: a confirmation page; changes nothing."""
        parsed = self._token(request)
        if isinstance(parsed, Response):
            return parsed
        _, channel = parsed
        brand, what = html.escape(self.brand), _channel_words(channel)
        return page(
            "Unsubscribe",
            f"<p>Stop receiving {what} from {brand}?</p>"
            '<form method="post"><input type="hidden" name="confirm" value="yes">'
            '<button type="submit">Unsubscribe</button></form>',
        )

    async def unsubscribe(self, request: Request) -> Response:
        """POST: RFC 8058 one-click (`List-Unsubscribe=One-Click`) or the page's form; suppresses the channel."""
        body = await read_body(request, self.ctx.settings.max_body_bytes)
        parsed = self._token(request)
        if isinstance(parsed, Response):
            return parsed
        customer_id, channel = parsed
        source = "list-unsubscribe one-click" if ONE_CLICK_BODY in body else "unsubscribe page"
        now = self.ctx.clock()

        def work() -> bool:
            with self.ctx.engine.begin() as conn:
                if channel == "email":  # the address opted out, whichever customer records share it
                    return suppress_address(conn, customer_id, channel, "unsubscribe", source, now) > 0
                return suppress(conn, customer_id, channel, "unsubscribe", source, now)

        new = await run_in_threadpool(work)
        log.info("unsubscribe customer=%s channel=%s source=%s new=%s", customer_id, channel, source, new)
        brand, what = html.escape(self.brand), _channel_words(channel)
        return page("Unsubscribed", f"<p>You will receive no more marketing {what} from {brand}.</p>")
