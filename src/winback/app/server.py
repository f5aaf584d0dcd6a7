"""`winback serve`: provider webhooks, one-click unsubscribe and the CRM intake, as one small Starlette app.

    POST /webhooks/sendgrid/events   SendGrid Event Webhook (ECDSA-signed JSON array)
    POST /webhooks/twilio/status     Twilio message status callbacks (X-Twilio-Signature)
    POST /webhooks/twilio/inbound    inbound SMS: STOP/START/HELP keywords, answered in TwiML
    GET|HEAD|POST /unsubscribe/{token}  RFC 8058 one-click unsubscribe (only POST changes anything)
    POST /crm/events                 CRM complaint/ticket events (X-Winback-Signature: sha256=<hex HMAC>)
    GET  /healthz

Every request is verified before anything is parsed or written: a failed check (401 missing, 403 forged or
stale; 401 for the CRM) changes nothing. An endpoint whose secret is not configured answers 503. Bodies
above `max_body_bytes` get 413. Logs carry masked addresses only, never tokens or secrets (uvicorn's
access log is off because unsubscribe URLs are capabilities).

Settings (environment, see `ServerSettings.from_env`): WINBACK_PUBLIC_URL (the public base URL, including
any path prefix a proxy strips: Twilio signs the URL it called, which the app rebuilds from this),
WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY, TWILIO_AUTH_TOKEN, WINBACK_CRM_SECRET, WINBACK_BRAND_NAME,
WINBACK_MAX_BODY_BYTES. Unsubscribe tokens use WINBACK_UNSUBSCRIBE_SECRET (messages.unsubscribe).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.twiml.messaging_response import MessagingResponse

from winback.channels.webhook_signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    verify_hmac_sha256,
    verify_sendgrid_event_signature,
    verify_twilio_signature,
)
from winback.channels.webhooks import WebhookPayloadError, parse_sendgrid_events, parse_twilio_status, sms_keyword
from winback.delivery.events import record_events, record_sms_reply
from winback.messages.redact import mask_phone
from winback.messages.render import Brand
from winback.messages.unsubscribe import DEV_SECRET, read_token
from winback.warehouse.crm import CrmEventIn, parse_crm_event, problems, record_crm_event
from winback.warehouse.suppressions import suppress, suppress_address
from winback.warehouse.timeutil import utcnow

log = logging.getLogger(__name__)

CRM_SIGNATURE_HEADER = "X-Winback-Signature"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
CHANNELS = ("email", "sms")
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the page URL holds the token
    "X-Robots-Tag": "noindex",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}

CrmHook = Callable[[CrmEventIn], Any]


@dataclass(frozen=True)
class ServerSettings:
    """What the server needs; an endpoint whose secret is None answers 503 (not configured)."""

    public_url: str = DEFAULT_PUBLIC_URL
    sendgrid_webhook_public_key: str | None = field(default=None, repr=False)
    twilio_auth_token: str | None = field(default=None, repr=False)
    crm_secret: str | None = field(default=None, repr=False)
    brand_name: str = Brand().name
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    replay_window_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError("WINBACK_PUBLIC_URL must start with http:// or https://")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        if self.sendgrid_webhook_public_key:
            try:  # a bad key must fail at start-up, not reject every event later
                EventWebhook(self.sendgrid_webhook_public_key)
            except (ValueError, TypeError) as exc:
                raise ValueError("WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key") from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env

        def var(name: str) -> str | None:
            return env.get(name, "").strip() or None

        max_body = var("WINBACK_MAX_BODY_BYTES")
        return cls(
            public_url=(var("WINBACK_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
            sendgrid_webhook_public_key=var("WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY"),
            twilio_auth_token=var("TWILIO_AUTH_TOKEN"),
            crm_secret=var("WINBACK_CRM_SECRET"),
            brand_name=var("WINBACK_BRAND_NAME") or Brand().name,
            max_body_bytes=int(max_body) if max_body else DEFAULT_MAX_BODY_BYTES,
        )


def emit_prefect_crm_event(event: CrmEventIn) -> None:
    """The default CRM hook: a Prefect event the `on-crm-event` deployment's trigger reacts to."""
    from prefect.events import emit_event

    emitted = emit_event(
        event=f"winback.crm.{event.type}",
        resource={
            "prefect.resource.id": f"winback.crm-event.{event.event_id}",
            "winback.customer-id": event.customer_id,
        },
        payload={  # no free-text description: Prefect's event store is not the place for it
            "event_id": event.event_id,
            "type": event.type,
            "customer_id": event.customer_id,
            "order_id": event.order_id,
            "ticket_id": event.ticket_id,
            "category": event.category,
            "severity": event.severity,
            "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        },
    )
    if emitted is None:
        log.warning("CRM event %s recorded but no Prefect event emitted (events disabled?)", event.event_id)


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
    reply = MessagingResponse()
    if text:
        reply.message(text)
    return Response(str(reply), media_type="application/xml")


def _page(title: str, body_html: str, status_code: int = 200) -> HTMLResponse:
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return HTMLResponse(doc, status_code=status_code, headers=PAGE_HEADERS)


class _App:
    """The endpoints, sharing the engine, the settings, the CRM hook and the clock."""

    def __init__(
        self, engine: Engine, settings: ServerSettings, on_crm_event: CrmHook, clock: Callable[[], dt.datetime]
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.on_crm_event = on_crm_event
        self.clock = clock
        self.brand = settings.brand_name

    # ------------------------------------------------------------ helpers

    def public_url(self, request: Request) -> str:
        """The URL the provider called: the configured public base + the path and query as received."""
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        query = request.scope.get("query_string", b"").decode("latin-1")
        return f"{self.settings.public_url.rstrip('/')}{path}" + (f"?{query}" if query else "")

    async def twilio_form(self, request: Request, name: str) -> MultiDict:
        """Read, verify and parse a Twilio form POST; raises 503/401/403/400 before anything is written."""
        body = await read_body(request, self.settings.max_body_bytes)
        token = self.settings.twilio_auth_token
        if not token:
            log.error("twilio %s webhook refused: TWILIO_AUTH_TOKEN is not configured", name)
            raise HTTPException(503, "twilio webhooks are not configured")
        signature = request.headers.get(TWILIO_SIGNATURE_HEADER)
        if not signature:
            log.warning("twilio %s webhook without signature refused", name)
            raise HTTPException(401, "missing signature")
        try:
            form = MultiDict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise HTTPException(403, "invalid signature") from None
        if not verify_twilio_signature(token, self.public_url(request), form, signature):
            log.warning("twilio %s webhook with an invalid signature refused", name)
            raise HTTPException(403, "invalid signature")
        return form

    # ------------------------------------------------------------ endpoints

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def sendgrid_events(self, request: Request) -> Response:
        body = await read_body(request, self.settings.max_body_bytes)
        key = self.settings.sendgrid_webhook_public_key
        if not key:
            log.error("sendgrid webhook refused: WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY is not configured")
            return PlainTextResponse("sendgrid webhooks are not configured", status_code=503)
        signature = request.headers.get(SENDGRID_SIGNATURE_HEADER)
        timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER)
        if not signature or not timestamp:
            log.warning("sendgrid webhook without signature headers refused")
            return PlainTextResponse("missing signature", status_code=401)
        now = self.clock()
        if not verify_sendgrid_event_signature(
            key, body, signature, timestamp, now=now, max_age_seconds=self.settings.replay_window_seconds
        ):
            log.warning("sendgrid webhook with an invalid or stale signature refused")
            return PlainTextResponse("invalid or expired signature", status_code=403)
        try:
            events = parse_sendgrid_events(body, received_at=now)
        except WebhookPayloadError as exc:
            return PlainTextResponse(str(exc), status_code=400)

        def work() -> dict[str, int]:
            with self.engine.begin() as conn:
                return record_events(conn, events).as_dict()

        result = await run_in_threadpool(work)
        log.info("sendgrid events %s", result)
        return JSONResponse(result)

    async def twilio_status(self, request: Request) -> Response:
        form = await self.twilio_form(request, "status")
        now = self.clock()
        try:
            event = parse_twilio_status(form, request.query_params, received_at=now)
        except WebhookPayloadError as exc:
            return PlainTextResponse(str(exc), status_code=400)

        def work() -> dict[str, int]:
            with self.engine.begin() as conn:
                return record_events(conn, [event]).as_dict()

        result = await run_in_threadpool(work)
        log.info("twilio status %s sid=%s %s", event.event_type, event.provider_message_id, result)
        return JSONResponse(result)

    async def twilio_inbound(self, request: Request) -> Response:
        form = await self.twilio_form(request, "inbound")
        keyword = sms_keyword(form.get("Body"))
        if keyword == "help":
            return twiml(
                f"{self.brand}: messages about your orders and offers. Reply STOP to unsubscribe, START to resubscribe."
            )
        number = (form.get("From") or "").strip()
        sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
        if keyword is None or not number:
            return twiml()
        if not sid:
            return PlainTextResponse("inbound message without MessageSid", status_code=400)
        now = self.clock()

        def work() -> Any:
            with self.engine.begin() as conn:
                return record_sms_reply(conn, number, keyword, sid, now)

        result = await run_in_threadpool(work)
        if not result.known:  # never tell whether a number is ours
            log.info("sms %s from unknown number %s ignored", keyword, mask_phone(number))
            return twiml()
        log.info("sms %s from %s: customers=%s new=%s", keyword, mask_phone(number), result.customers, result.new)
        if keyword == "stop":
            return twiml(
                f"{self.brand}: you are unsubscribed and will get no more texts from us. Reply START to resubscribe."
            )
        return twiml(f"{self.brand}: you are resubscribed to our texts. Reply STOP to unsubscribe.")

    def _token(self, request: Request) -> tuple[str, str] | Response:
        try:
            customer_id, channel = read_token(request.path_params["token"])
        except ValueError:
            return PlainTextResponse(
                "This unsubscribe link is not valid.", status_code=400, headers={"Cache-Control": "no-store"}
            )
        if channel not in CHANNELS:
            return PlainTextResponse(
                "This unsubscribe link is not valid.", status_code=400, headers={"Cache-Control": "no-store"}
            )
        return customer_id, channel

    @staticmethod
    def _channel_words(channel: str) -> str:
        return "emails" if channel == "email" else "text messages"

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET/HEAD: a confirmation page; changes nothing (link scanners and prefetchers follow GETs)."""
        parsed = self._token(request)
        if isinstance(parsed, Response):
            return parsed
        _, channel = parsed
        brand, what = html.escape(self.brand), self._channel_words(channel)
        return _page(
            "Unsubscribe",
            f"<p>Stop receiving {what} from {brand}?</p>"
            '<form method="post"><input type="hidden" name="confirm" value="yes">'
            '<button type="submit">Unsubscribe</button></form>',
        )

    async def unsubscribe(self, request: Request) -> Response:
        """POST: RFC 8058 one-click (`List-Unsubscribe=One-Click`) or the page's form; suppresses the channel."""
        body = await read_body(request, self.settings.max_body_bytes)
        parsed = self._token(request)
        if isinstance(parsed, Response):
            return parsed
        customer_id, channel = parsed
        source = "list-unsubscribe one-click" if ONE_CLICK_BODY in body else "unsubscribe page"
        now = self.clock()

        def work() -> bool:
            with self.engine.begin() as conn:
                if channel == "email":  # the address opted out, whichever customer records share it
                    return suppress_address(conn, customer_id, channel, "unsubscribe", source, now) > 0
                return suppress(conn, customer_id, channel, "unsubscribe", source, now)

        new = await run_in_threadpool(work)
        log.info("unsubscribe customer=%s channel=%s source=%s new=%s", customer_id, channel, source, new)
        brand, what = html.escape(self.brand), self._channel_words(channel)
        return _page("Unsubscribed", f"<p>You will receive no more marketing {what} from {brand}.</p>")

    async def crm_events(self, request: Request) -> Response:
        body = await read_body(request, self.settings.max_body_bytes)
        secret = self.settings.crm_secret
        if not secret:
            log.error("CRM event refused: WINBACK_CRM_SECRET is not configured")
            return JSONResponse({"detail": "CRM intake is not configured"}, status_code=503)
        if not verify_hmac_sha256(secret, body, request.headers.get(CRM_SIGNATURE_HEADER)):
            log.warning("CRM event with a missing or invalid signature refused")
            return JSONResponse({"detail": "missing or invalid signature"}, status_code=401)
        try:
            event = parse_crm_event(body)
        except ValidationError as exc:
            return JSONResponse({"detail": problems(exc)}, status_code=422)
        now = self.clock()

        def work() -> bool:
            with self.engine.begin() as conn:
                return record_crm_event(conn, event, now)

        if not await run_in_threadpool(work):
            log.info("CRM event %s (%s) is a redelivery: ignored", event.event_id, event.type)
            return JSONResponse({"status": "duplicate", "event_id": event.event_id}, status_code=200)
        log.info("CRM event %s (%s) recorded for customer %s", event.event_id, event.type, event.customer_id)
        try:
            await run_in_threadpool(self.on_crm_event, event)
        except Exception:  # the event is recorded: a failed notification must not turn into an error
            log.warning("CRM event %s recorded, but its hook failed", event.event_id, exc_info=True)
        return JSONResponse({"status": "accepted", "event_id": event.event_id}, status_code=202)


def create_app(
    engine: Engine,
    settings: ServerSettings,
    *,
    on_crm_event: CrmHook | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Starlette:
    """The ASGI app. `on_crm_event(event)` runs once per new CRM event (default: emit a Prefect event)."""
    app = _App(engine, settings, on_crm_event or emit_prefect_crm_event, clock)
    routes = [
        Route("/healthz", app.healthz, methods=["GET"]),
        Route("/webhooks/sendgrid/events", app.sendgrid_events, methods=["POST"]),
        Route("/webhooks/twilio/status", app.twilio_status, methods=["POST"]),
        Route("/webhooks/twilio/inbound", app.twilio_inbound, methods=["POST"]),
        Route("/unsubscribe/{token}", app.unsubscribe_page, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", app.unsubscribe, methods=["POST"]),
        Route("/crm/events", app.crm_events, methods=["POST"]),
    ]
    starlette = Starlette(routes=routes)
    starlette.state.settings = settings
    return starlette


def serve(host: str, port: int) -> None:
    """Run the app with uvicorn on the configured database (WINBACK_DATABASE_URL)."""
    import uvicorn

    from winback.warehouse.db import make_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env()
    for configured, what in (
        (settings.sendgrid_webhook_public_key, "WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY (SendGrid events)"),
        (settings.twilio_auth_token, "TWILIO_AUTH_TOKEN (Twilio webhooks)"),
        (settings.crm_secret, "WINBACK_CRM_SECRET (CRM intake)"),
    ):
        if not configured:
            log.warning("%s is not set: that endpoint answers 503", what)
    if os.environ.get("WINBACK_UNSUBSCRIBE_SECRET", DEV_SECRET) == DEV_SECRET:
        log.warning("WINBACK_UNSUBSCRIBE_SECRET is not set: unsubscribe links use the public dev secret")
    if settings.crm_secret and not os.environ.get("PREFECT_API_URL"):
        log.warning(
            "PREFECT_API_URL is not set: CRM events go to a temporary Prefect server with no deployments, so "
            "no trigger starts recovery; the hourly dispatch-outbox sweep picks them up instead"
        )
    engine = make_engine()
    try:
        uvicorn.run(
            create_app(engine, settings),
            host=host,
            port=port,
            access_log=False,  # request lines would log unsubscribe tokens
            server_header=False,
            log_level="info",
        )
    finally:
        engine.dispose()
