"""POST /crm/events: complaint and ticket events from the CRM, HMAC-signed (X-Winback-Signature).

A new event is recorded, then handed to the hook (by default a Prefect event the `on-crm-event`
deployment's trigger reacts to); a redelivered one is acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from winback.app.web.base import Context, log, read_body
from winback.channels.webhook_signatures import verify_hmac_sha256
from winback.warehouse.crm import CrmEventIn, parse_crm_event, problems, record_crm_event

CRM_SIGNATURE_HEADER = "X-Winback-Signature"
CrmHook = Callable[[CrmEventIn], Any]


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


class CrmIntake:
    """The CRM endpoint and the hook each new event goes to."""

    def __init__(self, ctx: Context, on_crm_event: CrmHook) -> None:
        self.ctx = ctx
        self.on_crm_event = on_crm_event

    async def events(self, request: Request) -> Response:
        """POST /crm/events: record a signed CRM event once, then hand it to the hook.

        202 when new, 200 for a redelivery (nothing recorded twice), 401 unsigned, 422 invalid, 503 unconfigured.
        """
        body = await read_body(request, self.ctx.settings.max_body_bytes)
        secret = self.ctx.settings.crm_secret
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
        now = self.ctx.clock()

        def work() -> bool:
            with self.ctx.engine.begin() as conn:
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
