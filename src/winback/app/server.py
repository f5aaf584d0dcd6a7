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
access log is off because unsubscribe URLs are capabilities). An expected failure while handling a request
(the database refusing, say) is logged in one line and answered 503, so providers retry later.

The settings (`ServerSettings.from_settings`) are read once, when the server starts: WINBACK_PUBLIC_URL,
WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY, TWILIO_AUTH_TOKEN, WINBACK_CRM_SECRET, WINBACK_BRAND_NAME,
WINBACK_MAX_BODY_BYTES and WINBACK_UNSUBSCRIBE_SECRET (see `winback.settings`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from winback.app.web.base import Context, log
from winback.app.web.crm import CRM_SIGNATURE_HEADER, CrmHook, CrmIntake, emit_prefect_crm_event
from winback.app.web.providers import ProviderWebhooks
from winback.app.web.settings import ServerSettings
from winback.app.web.unsubscribe import UnsubscribePages
from winback.messages.unsubscribe import DEV_SECRET
from winback.settings import Settings
from winback.warehouse.timeutil import utcnow

__all__ = ["CRM_SIGNATURE_HEADER", "ServerSettings", "create_app", "emit_prefect_crm_event", "serve"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def expected_failure(request: Request, exc: Exception) -> Response:
    """An expected failure (the database down, a bad row): one log line, 503 so the sender retries later."""
    from winback.app.failures import one_line

    log.error("%s %s failed: %s", request.method, request.url.path, one_line(exc))
    return JSONResponse({"detail": "temporarily unavailable"}, status_code=503)


def create_app(
    engine: Engine,
    settings: ServerSettings,
    *,
    on_crm_event: CrmHook | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Starlette:
    """The ASGI app. `on_crm_event(event)` runs once per new CRM event (default: emit a Prefect event)."""
    from winback.app.failures import expected_types

    ctx = Context(engine, settings, clock)
    providers, pages = ProviderWebhooks(ctx), UnsubscribePages(ctx)
    crm = CrmIntake(ctx, on_crm_event or emit_prefect_crm_event)
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/webhooks/sendgrid/events", providers.sendgrid_events, methods=["POST"]),
        Route("/webhooks/twilio/status", providers.twilio_status, methods=["POST"]),
        Route("/webhooks/twilio/inbound", providers.twilio_inbound, methods=["POST"]),
        Route("/unsubscribe/{token}", pages.confirm, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", pages.unsubscribe, methods=["POST"]),
        Route("/crm/events", crm.events, methods=["POST"]),
    ]
    handlers = dict.fromkeys(expected_types(), expected_failure)
    starlette = Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]
    starlette.state.settings = settings
    return starlette


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app with uvicorn on the configured database; warns of every endpoint left unconfigured."""
    import uvicorn

    from winback.warehouse.db import make_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server_settings = ServerSettings.from_settings(settings)
    for configured, what in (
        (server_settings.sendgrid_webhook_public_key, "WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY (SendGrid events)"),
        (server_settings.twilio_auth_token, "TWILIO_AUTH_TOKEN (Twilio webhooks)"),
        (server_settings.crm_secret, "WINBACK_CRM_SECRET (CRM intake)"),
    ):
        if not configured:
            log.warning("%s is not set: that endpoint answers 503", what)
    if server_settings.unsubscribe.secret == DEV_SECRET:
        log.warning("WINBACK_UNSUBSCRIBE_SECRET is not set: unsubscribe links use the public dev secret")
    if server_settings.crm_secret and not settings.prefect_api_url:
        log.warning(
            "PREFECT_API_URL is not set: CRM events go to a temporary Prefect server with no deployments, so "
            "no trigger starts recovery; the hourly dispatch-outbox sweep picks them up instead"
        )
    engine = make_engine(settings.database_url)
    try:
        uvicorn.run(
            create_app(engine, server_settings),
            host=host,
            port=port,
            access_log=False,  # request lines would log unsubscribe tokens
            server_header=False,
            log_level="info",
        )
    finally:
        engine.dispose()
