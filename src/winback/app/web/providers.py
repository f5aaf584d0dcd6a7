"""Provider webhooks: SendGrid's events, Twilio's statuses and inbound texts (STOP/START/HELP).

Every request is verified before anything is parsed or written: 401 without a signature, 403 with a
forged or stale one, 503 when the verifying secret is not configured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from winback.app.web.base import Context, log, read_body, twiml
from winback.channels.webhook_signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    verify_sendgrid_event_signature,
    verify_twilio_signature,
)
from winback.channels.webhooks import WebhookPayloadError, parse_sendgrid_events, parse_twilio_status, sms_keyword
from winback.delivery.events import record_events, record_sms_reply
from winback.messages.redact import mask_phone


class ProviderWebhooks:
    """POST /webhooks/sendgrid/events, /webhooks/twilio/status and /webhooks/twilio/inbound."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.brand = ctx.settings.brand_name

    async def twilio_form(self, request: Request, name: str) -> MultiDict:
        """Read, verify and parse a Twilio form POST; raises 503/401/403/400 before anything is written."""
        body = await read_body(request, self.ctx.settings.max_body_bytes)
        token = self.ctx.settings.twilio_auth_token
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
        if not verify_twilio_signature(token, self.ctx.public_url(request), form, signature):
            log.warning("twilio %s webhook with an invalid signature refused", name)
            raise HTTPException(403, "invalid signature")
        return form

    async def sendgrid_events(self, request: Request) -> Response:
        """POST /webhooks/sendgrid/events: verify the signed batch (and its age), then record each event once."""
        settings = self.ctx.settings
        body = await read_body(request, settings.max_body_bytes)
        key = settings.sendgrid_webhook_public_key
        if not key:
            log.error("sendgrid webhook refused: WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY is not configured")
            return PlainTextResponse("sendgrid webhooks are not configured", status_code=503)
        signature = request.headers.get(SENDGRID_SIGNATURE_HEADER)
        timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER)
        if not signature or not timestamp:
            log.warning("sendgrid webhook without signature headers refused")
            return PlainTextResponse("missing signature", status_code=401)
        now = self.ctx.clock()
        if not verify_sendgrid_event_signature(
            key, body, signature, timestamp, now=now, max_age_seconds=settings.replay_window_seconds
        ):
            log.warning("sendgrid webhook with an invalid or stale signature refused")
            return PlainTextResponse("invalid or expired signature", status_code=403)
        try:
            events = parse_sendgrid_events(body, received_at=now)
        except WebhookPayloadError as exc:
            return PlainTextResponse(str(exc), status_code=400)

        def work() -> dict[str, int]:
            with self.ctx.engine.begin() as conn:
                return record_events(conn, events).as_dict()

        result = await run_in_threadpool(work)
        log.info("sendgrid events %s", result)
        return JSONResponse(result)

    async def twilio_status(self, request: Request) -> Response:
        """POST /webhooks/twilio/status: record a verified delivery status for the message it names."""
        form = await self.twilio_form(request, "status")
        now = self.ctx.clock()
        try:
            event = parse_twilio_status(form, request.query_params, received_at=now)
        except WebhookPayloadError as exc:
            return PlainTextResponse(str(exc), status_code=400)

        def work() -> dict[str, int]:
            with self.ctx.engine.begin() as conn:
                return record_events(conn, [event]).as_dict()

        result = await run_in_threadpool(work)
        log.info("twilio status %s sid=%s %s", event.event_type, event.provider_message_id, result)
        return JSONResponse(result)

    async def twilio_inbound(self, request: Request) -> Response:
        """POST /webhooks/twilio/inbound: answer HELP, apply STOP/START, ignore any other text.

        The answer never tells whether a number is one winback texted.
        """
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
        now = self.ctx.clock()

        def work() -> Any:
            with self.ctx.engine.begin() as conn:
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
