"""Throughput of the channel adapters through the real SDKs, against the local provider stand-ins.

    .venv/bin/python bench/providers.py [-n 2000] [--workers 8] [--validator jsonschema|openapi-core]

Client and stand-in share one process (and one GIL), so the figures are a floor for the adapter's own cost
per message: SDK request building, HTTP, error mapping and the stand-in's contract checks. They tell whether
the adapters will ever be the bottleneck of a campaign; they say nothing about the providers' own limits.
The last line is machine-readable: `sendgrid_per_s=… twilio_per_s=…`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the stand-ins live with the tests, as package `standins`

from standins.sendgrid_api import running_sendgrid_standin  # noqa: E402
from standins.twilio_api import running_twilio_standin  # noqa: E402

from winback.channels.outcomes import OutgoingMessage, Sent  # noqa: E402
from winback.channels.sendgrid import SendGridChannel  # noqa: E402
from winback.channels.twilio import TwilioChannel  # noqa: E402

WARMUP = 20


def emails(n: int) -> Iterator[OutgoingMessage]:
    for i in range(n):
        yield OutgoingMessage(
            message_id=f"bench-{i:06d}",
            channel="email",
            to=f"customer{i}@example.com",
            subject="We miss you",
            text=f"Hi customer {i}, here is 20% off your next order.",
            html=f"<html><body><p>Hi customer {i}, here is <b>20%</b> off.</p></body></html>",
            campaign_id="bench",
            customer_id=f"cust-{i}",
            unsubscribe_url=f"https://winback.example/u/{i}",
            categories=("winback", "bench"),
        )


def texts(n: int) -> Iterator[OutgoingMessage]:
    for i in range(n):
        yield OutgoingMessage(
            message_id=f"bench-{i:06d}",
            channel="sms",
            to=f"+4477009{i:05d}",
            text=f"Hi customer {i}, 20% off this week: winback.example/o/{i}\nReply STOP to opt out",
            campaign_id="bench",
        )


def run(
    name: str,
    standin: Callable[..., AbstractContextManager[Any]],
    make_channel: Callable[[Any], Any],
    messages: Callable[[int], Iterator[OutgoingMessage]],
    *,
    n: int,
    workers: int,
    validator: str,
) -> float:
    with standin(validator=validator) as server:
        channel = make_channel(server)
        for message in messages(WARMUP):  # connection pools, caches, compiled validators
            channel.send(message)
        batch = list(messages(n))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(channel.send, batch))
        elapsed = time.perf_counter() - started
        accepted = len(server.accepted) - WARMUP
    sent = sum(isinstance(o, Sent) for o in outcomes)
    if sent != n or accepted != n:
        failures = [o for o in outcomes if not isinstance(o, Sent)][:3]
        raise SystemExit(f"{name}: only {sent}/{n} sent, {accepted} accepted; e.g. {failures}")
    rate = n / elapsed
    print(f"{name:>8}: {n} messages in {elapsed:.2f} s = {rate:,.0f} msg/s ({workers} workers, {validator})")
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--validator", choices=["jsonschema", "openapi-core"], default="jsonschema")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # the adapters log each send at INFO; keep them out of timing

    common = {"n": args.messages, "workers": args.workers, "validator": args.validator}
    sendgrid = run("sendgrid", running_sendgrid_standin, lambda s: SendGridChannel(s.settings()), emails, **common)
    twilio = run("twilio", running_twilio_standin, lambda s: TwilioChannel(s.settings()), texts, **common)
    print(f"sendgrid_per_s={sendgrid:.0f} twilio_per_s={twilio:.0f}")


if __name__ == "__main__":
    main()
