"""The kill -9 harness for the delivery tests (tests/test_dispatch_*.py): real sender processes, killed.

`start_sender` runs `crash_sender.run_sender` in its own process, forked from a multiprocessing forkserver
(a fresh `sys.executable` interpreter that has imported the sender's modules once), so each sender costs
milliseconds of start-up, not seconds; `kill9` kills it with SIGKILL. The provider stand-ins live in the
test's process and so outlive the kill; the sink's journal is a file. Helpers to read what was left
follow: the outbox as a frame, status counts, and what the stand-ins received.
"""

from __future__ import annotations

import datetime as dt
import functools
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF
from crash_sender import queue_messages, run_sender
from sqlalchemy import Engine, select
from standins import twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TwilioStandin

from winback.stages import campaign as stages
from winback.warehouse import outbox
from winback.warehouse.models import OutboxMessage

TESTS = Path(__file__).resolve().parent
NOW = AS_OF + dt.timedelta(days=1)  # quiet hours are over everywhere: every queued message is due
RATE = 100.0  # messages/s per channel in the child: a claim of 200 (~180 emails) takes ~1.8 s, ~0.8 s for the
#               first (its first 100 go at once: the token bucket starts full)
CLAIM = 200  # send_due's default claim size: the most a crash can strand
CONCURRENCY = 8  # the sender's calls in flight (WINBACK_SEND_CONCURRENCY's default): the most a crash can leave unknown
CONTACT_DATA = ("missing email address", "invalid email address", "missing phone number", "invalid phone number")

BAD_EMAILS = {17: "hugo moreau@example.com", 211: "ruby.taylor.example.com", 333: "lucas@example", 480: ""}
BAD_PHONES = {5: "+44711014294", 40: "12"}


def queue_big_run(engine: Engine) -> stages.RunHandle:
    """660 queued messages (600 email, 60 SMS, a few with bad contact data, half with an offer code)."""
    emails = [(f"E{i:04d}", "email", BAD_EMAILS.get(i, f"customer.{i}@example.com")) for i in range(600)]
    phones = [(f"S{i:04d}", "sms", BAD_PHONES.get(i, f"+4479111{i:05d}")) for i in range(60)]
    recipients = [r for pair in zip(emails[:60], phones, strict=True) for r in pair] + emails[60:]
    run = queue_messages(engine, recipients, AS_OF, campaign_id="crash", offers=True)
    assert len(recipients) > 3 * CLAIM, "the run should span several claim batches"
    return run


@functools.cache
def sender_processes() -> multiprocessing.context.ForkServerContext:
    """A forkserver that has imported the sender's modules once; each sender is a fork of it.

    Python 3.11's forkserver does not take the parent's sys.path, so tests/ reaches it via PYTHONPATH;
    each fork re-runs the main script (pytest's is a shim importing pytest), so pytest is preloaded too.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pytest", "crash_sender"])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), saved) if p)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return context


def start_sender(engine: Engine, mode: str, tmp_path: Path, extra_env: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
                 name: str = "sender"):  # fmt: skip
    """`crash_sender.run_sender` in its own process, on this test's database and journal (log: `<name>.log`)."""
    env = {
        "WINBACK_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "WINBACK_SINK_PATH": os.environ["WINBACK_SINK_PATH"],
        "CRASH_SENDER_NOW": NOW.isoformat(),
        "CRASH_SENDER_RATE": str(RATE),
        **(extra_env or {}),
    }
    log = tmp_path / f"{name}.log"
    proc = sender_processes().Process(target=run_sender, args=(mode, env, str(log)), daemon=True)
    proc.start()
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def wait_until(condition: Callable[[], bool], proc, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Poll every 5 ms; fail (not hang) when the sender exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if not proc.is_alive():
            output = proc.log_path.read_text()[-3000:] if proc.log_path.exists() else ""
            pytest.fail(f"the sender exited ({proc.exitcode}) before {what}; nothing was killed:\n{output}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.join()
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def finish(proc, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Wait for a sender to finish on its own; fail with its log if it does not, or fails."""
    proc.join(timeout=timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
    output = proc.log_path.read_text()[-3000:] if proc.log_path.exists() else ""
    assert proc.exitcode == 0, f"the sender ended with {proc.exitcode}:\n{output}"


def kill9(proc) -> None:  # type: ignore[no-untyped-def]
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=10)
    assert proc.exitcode == -signal.SIGKILL


class JournalLines:
    """Counts complete lines in a growing journal, reading only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.count, self._fh = path, 0, None

    def __call__(self) -> int:
        if self._fh is None:
            if not self.path.exists():
                return 0
            self._fh = self.path.open("rb")
        self.count += self._fh.read().count(b"\n")
        return self.count

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def outbox_frame(engine: Engine, run_id: int, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The run's outbox rows: id, customer, channel, status, last error, provider id, and `extra` columns."""
    table = OutboxMessage.__table__
    names = ("id", "customer_id", "channel", "status", "last_error", "provider_message_id", *extra)
    with engine.connect() as conn:
        return pd.read_sql(select(*(table.c[n] for n in names)).where(table.c.run_id == run_id), conn)


def status_counts(engine: Engine, run_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        return outbox.status_counts(conn, run_id)


BAD_CUSTOMERS = {f"E{i:04d}" for i in BAD_EMAILS} | {f"S{i:04d}" for i in BAD_PHONES}


def skipped_customers(rows: pd.DataFrame) -> set[str]:
    """Customers whose message was skipped, checking each was skipped for its contact data."""
    skipped = rows.loc[rows["status"] == "skipped"]
    assert all(reason.startswith(CONTACT_DATA) for reason in skipped["last_error"]), skipped["last_error"].tolist()
    return set(skipped["customer_id"])


def sendgrid_message_id(exchange) -> str | None:  # type: ignore[no-untyped-def]
    """Our message id from a Mail Send request (None for a request torn by the kill)."""
    try:
        return exchange.json()["personalizations"][0]["custom_args"]["winback_message_id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def provider_env(sg: SendGridStandin, tw: TwilioStandin | None = None) -> dict[str, str]:
    """The environment a sender process needs to reach the stand-ins through the real SDKs."""
    env = {
        "SENDGRID_API_KEY": sg.api_key,
        "SENDGRID_API_HOST": sg.url,
        "WINBACK_EMAIL_FROM": "Winback <offers@winback.example>",
        "WINBACK_POSTAL_ADDRESS": "Winback Ltd, 1 Example Street, Springfield",
    }
    if tw is not None:
        env |= {
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_FROM_NUMBER": twilio_api.VALID_TEST_FROM,
            "TWILIO_API_BASE_URL": tw.url,
        }
    return env


def duplicates(values: list) -> list:  # type: ignore[type-arg]
    """The values that occur more than once (None ignored: a request torn by the kill)."""
    return [value for value, n in Counter(v for v in values if v is not None).items() if n > 1]


class Recording:
    """A channel that remembers the message ids it was asked to send (and keeps the wrapped one's powers)."""

    def __init__(self, channel) -> None:  # type: ignore[no-untyped-def]
        self.channel, self.ids = channel, []

    def send(self, message):  # type: ignore[no-untyped-def]
        self.ids.append(message.message_id)
        return self.channel.send(message)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.channel, name)


def sendgrid_event(oid: str, x_message_id: str, n: int, event: str = "delivered") -> dict:  # type: ignore[type-arg]
    """A SendGrid Event Webhook event for our message `oid` (custom args are top-level keys, as posted)."""
    return {
        "email": "someone@example.com",
        "timestamp": int(NOW.timestamp()) - 60,
        "event": event,
        "sg_event_id": f"evt-{event}-{oid}-{n}",
        "sg_message_id": f"{x_message_id}.filterdrecv-1-2-3.0",
        "winback_message_id": oid,
    }


def post_signed_sendgrid_events(engine: Engine, events: list[dict]) -> dict:  # type: ignore[type-arg]
    """POST `events` to `winback serve`'s Event Webhook endpoint, signed as SendGrid signs (ECDSA P-256)."""
    import base64
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from starlette.testclient import TestClient

    from winback.app.server import ServerSettings, create_app

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    settings = ServerSettings(
        public_url="https://hooks.example.com", sendgrid_webhook_public_key=base64.b64encode(public).decode()
    )
    body = json.dumps(events).encode()
    stamp = str(int(NOW.timestamp()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(
            key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        ).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    client = TestClient(create_app(engine, settings, on_crm_event=lambda event: None, clock=lambda: NOW))
    response = client.post("/webhooks/sendgrid/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()
