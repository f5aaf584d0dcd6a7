"""A sender in its own process, for tests that kill it with SIGKILL mid-send (tests/test_dispatch_crash.py).

    python tests/crash_sender.py sink        # both channels to the local sink journal, paced
    python tests/crash_sender.py providers   # channels from the environment (configured_channels)

Environment: WINBACK_DATABASE_URL, WINBACK_SINK_PATH, CRASH_SENDER_NOW (ISO time passed to the sender as
`now`), CRASH_SENDER_RATE (messages per second per channel), CRASH_SENDER_CONCURRENCY (calls in flight,
default 8 as WINBACK_SEND_CONCURRENCY), CRASH_SENDER_CLAIM (rows per claim, default 200); for `providers`
also the SENDGRID_*, TWILIO_* and WINBACK_EMAIL_FROM / WINBACK_POSTAL_ADDRESS variables
`Settings()` reads (this process is its own edge).

It prints one JSON line with the dispatch report if it ever finishes (the tests kill it long before).

The tests start it through a multiprocessing "forkserver" that preloads this module (`run_sender`): a fresh
interpreter (sys.executable) imports pandas, SQLAlchemy and the provider SDKs once, then every sender is a
fork of it, a separate process like any other but started in milliseconds instead of seconds. They also
import the small helpers below (`PacedSink`, `queue_messages`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys

# imported here, once in the forkserver, rather than lazily in each forked sender
import sqlalchemy.dialects.sqlite.pysqlite
import twilio.rest.api.v2010.account.message  # noqa: F401
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from winback.channels.sink import SinkChannel
from winback.delivery.dispatch import Channel, SendLimits, send_time_source
from winback.delivery.registry import configured_channels
from winback.delivery.senders import SenderJob
from winback.delivery.senders import run_sender as send_job
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import Settings
from winback.warehouse import outbox
from winback.warehouse.db import make_engine
from winback.warehouse.source import SourceTables

with contextlib.suppress(ImportError):  # no PostgreSQL driver: those tests skip anyway
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401


class PacedSink(SinkChannel):
    """The local sink, throttled and sent concurrently like a provider.

    `send_due` exempts the real sink from the rate limiter (it is not a provider) and sends to it inline;
    a paced sink keeps the journal semantics while making a send take long enough to be interrupted.
    """

    rate_limited = True


OFFER = {"code": "WB-7Q2K-X9", "offer_kind": "percent_discount", "offer_value": 15.0, "offer_amount": 15.0,
         "currency": "GBP", "expires_at": "2026-12-31T23:59:00+00:00"}  # fmt: skip


def outbox_row(run_id: int, customer_id: str, channel: str, address: str, at: dt.datetime, offer: bool = False) -> dict:
    """An outbox row as `messages.compose.plan_rows` builds it for the `winback` template."""
    context = {"first_name": "Ada", "locale": "en_US" if address.startswith("+1") else "en_GB",
               "last_order_at": "2025-10-01T09:00:00+00:00", **(OFFER if offer else {})}  # fmt: skip
    return {
        "id": outbox.message_id(run_id, customer_id, "winback"), "run_id": run_id, "customer_id": customer_id,
        "step": "winback", "channel": channel, "template": "winback", "to_address": address, "context": context,
        "status": "queued", "attempts": 0, "not_before": at, "created_at": at,
    }  # fmt: skip


def queue_messages(
    engine: Engine,
    recipients: list[tuple[str, str, str]],
    at: dt.datetime,
    campaign_id: str = "dispatch-test",
    offers: bool = False,
):  # type: ignore[no-untyped-def]
    """Start a run and queue one message per (customer_id, channel, address), due at `at`; the RunHandle.

    With `offers`, every other message carries a discount code.
    """
    from winback.config import CampaignConfig
    from winback.stages import campaign as stages

    with Session(engine) as session, session.begin():
        run = stages.start_run(session, CampaignConfig(campaign_id=campaign_id), at)
    rows = [outbox_row(run.run_id, c, ch, a, at, offers and i % 2 == 0) for i, (c, ch, a) in enumerate(recipients)]
    with engine.begin() as conn:
        outbox.enqueue(conn, rows)
    return run


def channels_for(mode: str) -> dict[str, Channel]:
    settings = Settings()  # this process is its own edge: the environment the test handed it
    if mode == "sink":
        sink = PacedSink(settings.sink_path)
        return {"email": sink, "sms": sink}
    if mode == "providers":
        return configured_channels(settings)
    raise SystemExit(f"unknown mode {mode!r}: use sink or providers")


def run_sender(mode: str, env: dict[str, str], log_path: str) -> None:
    """The child's entry point under the forkserver: the test's environment, output to `log_path`, send."""
    for key in list(os.environ):
        if key.startswith(("SENDGRID_", "TWILIO_", "WINBACK_", "CRASH_SENDER_")):
            del os.environ[key]
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    main(["crash_sender", mode])


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "sink"
    channels = channels_for(mode)
    engine = make_engine(os.environ["WINBACK_DATABASE_URL"])
    rate = float(os.environ.get("CRASH_SENDER_RATE", "100"))
    now = dt.datetime.fromisoformat(os.environ["CRASH_SENDER_NOW"])
    concurrency = int(os.environ.get("CRASH_SENDER_CONCURRENCY", "8"))
    limits = SendLimits(email_per_second=rate, sms_per_second=rate, concurrency=concurrency)
    claim = int(os.environ.get("CRASH_SENDER_CLAIM", "200"))
    settings = Settings()  # this process is its own edge
    source = send_time_source(engine, SourceTables.from_settings(settings))
    job = SenderJob(None, "", now, limits, claim_size=claim)
    report = send_job(engine, channels, job, source=source, links=UnsubscribeLinks.from_settings(settings))
    print(json.dumps(report.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
