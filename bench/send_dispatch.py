"""Benchmark: `send_due`'s own cost per message on the provider path (claim, checks, render, commits).

    .venv/bin/python bench/send_dispatch.py [-n 3000] [--url postgresql+psycopg://...] [--channel standins|null]
                                            [--concurrency 8] [--repeat 3]

Queues `-n` messages (one SMS in ten) in a fresh run, then one `send_due` sends them with the rate limits
lifted, `--concurrency` calls in flight, through:
- `standins`: the SendGrid and Twilio SDKs to the local stand-ins (in this process: the figure is a floor);
- `null`: a provider-like channel (sent concurrently, rate limited, no journal) that answers at once, so
  what is measured is the dispatcher and the state database alone: where a commit per row would show;
- `sink`: the local sink's journal (sent inline, recorded with its claim: no commit per row).
Default database: a temporary SQLite file. Each repeat queues a new run. Last line:
`channel=… database=… messages=… seconds=… per_s=… us_per_message=…` (the best repeat).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the stand-ins and the outbox helpers live with the tests

from crash_sender import queue_messages  # noqa: E402
from standins.sendgrid_api import running_sendgrid_standin  # noqa: E402
from standins.twilio_api import VALID_TEST_FROM, running_twilio_standin  # noqa: E402

from winback.channels.outcomes import OutgoingMessage, SendOutcome, Sent  # noqa: E402
from winback.channels.sendgrid import SendGridChannel  # noqa: E402
from winback.channels.sink import SinkChannel  # noqa: E402
from winback.channels.twilio import TwilioChannel  # noqa: E402
from winback.delivery.dispatch import SendLimits, send_due, send_time_source  # noqa: E402
from winback.messages.unsubscribe import UnsubscribeLinks  # noqa: E402
from winback.settings import Settings  # noqa: E402
from winback.warehouse.db import make_engine  # noqa: E402
from winback.warehouse.migrate import upgrade  # noqa: E402
from winback.warehouse.source import SourceTables  # noqa: E402

AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
NOW = AS_OF + dt.timedelta(days=1)


class NullProvider:
    """Answers `Sent` at once; looks like a provider to the dispatcher (rate limited, no journal)."""

    name = "null"
    rate_limited = True

    def send(self, message: OutgoingMessage) -> SendOutcome:
        return Sent("null", f"null-{message.message_id}")


def recipients(n: int, offset: int) -> list[tuple[str, str, str]]:
    out = []
    for i in range(offset, offset + n):
        if i % 10 == 0:
            out.append((f"S{i:07d}", "sms", f"+4479{i:08d}"))
        else:
            out.append((f"E{i:07d}", "email", f"customer.{i}@example.com"))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=3000)
    parser.add_argument("--url", default=None, help="state database URL (default: a temporary SQLite file)")
    parser.add_argument("--channel", choices=["standins", "null", "sink"], default="null")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # the adapters log each send at INFO
    with ExitStack() as stack:
        url = args.url or f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.db"
        engine = make_engine(url)
        upgrade(url, engine=engine)
        if args.channel == "null":
            null = NullProvider()
            channels = {"email": null, "sms": null}
        elif args.channel == "sink":
            sink = SinkChannel(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "sink.jsonl")
            channels = {"email": sink, "sms": sink}
        else:
            sg = stack.enter_context(running_sendgrid_standin())
            tw = stack.enter_context(running_twilio_standin())
            channels = {
                "email": SendGridChannel(sg.settings()),
                "sms": TwilioChannel(tw.settings(from_number=VALID_TEST_FROM)),
            }
        limits = SendLimits(email_per_second=1e6, sms_per_second=1e6, concurrency=args.concurrency)
        settings = Settings()
        source = send_time_source(engine, SourceTables.from_settings(settings))
        links = UnsubscribeLinks.from_settings(settings)
        best = float("inf")
        for repeat in range(args.repeat):
            run = queue_messages(engine, recipients(args.messages, repeat * args.messages), AS_OF, "bench")
            started = time.perf_counter()
            report = send_due(engine, channels, run_id=run.run_id, now=NOW, limits=limits, source=source, links=links)
            seconds = time.perf_counter() - started
            sent = report.counts["sent"]
            if sent != args.messages:
                raise SystemExit(f"only {sent}/{args.messages} sent: {report.as_dict()}")
            print(f"repeat {repeat}: {sent} messages in {seconds:.2f} s = {sent / seconds:,.0f}/s")
            best = min(best, seconds)
        engine.dispose()
    database = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(
        f"channel={args.channel} database={database} messages={args.messages} seconds={best:.2f} "
        f"per_s={args.messages / best:.0f} us_per_message={best / args.messages * 1e6:.0f}"
    )


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
