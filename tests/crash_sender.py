"""A sender in its own process, for tests that kill it with SIGKILL mid-send (tests/test_dispatch_crash.py).

    python tests/crash_sender.py sink        # both channels to the local sink journal, paced
    python tests/crash_sender.py providers   # channels from the environment (configured_channels)

Environment: WINBACK_DATABASE_URL, WINBACK_SINK_PATH, CRASH_SENDER_NOW (ISO time passed to send_due as
`now`), CRASH_SENDER_RATE (messages per second per channel); for `providers` also the SENDGRID_*, TWILIO_* and
WINBACK_EMAIL_FROM / WINBACK_POSTAL_ADDRESS variables `configured_channels()` reads.

It prints one JSON line with the dispatch report if it ever finishes (the tests kill it long before).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

from messages.channels.registry import configured_channels
from messages.channels.sink import SinkChannel
from messages.dispatch import Channel, SendLimits, send_due
from warehouse.db import make_engine


class PacedSink(SinkChannel):
    """The local sink, throttled and sent concurrently like a provider.

    `send_due` exempts the real sink from the rate limiter (it is not a provider) and sends to it inline;
    a paced sink keeps the journal semantics while making a send take long enough to be interrupted.
    """

    rate_limited = True


def channels_for(mode: str) -> dict[str, Channel]:
    if mode == "sink":
        sink = PacedSink()
        return {"email": sink, "sms": sink}
    if mode == "providers":
        return configured_channels()
    raise SystemExit(f"unknown mode {mode!r}: use sink or providers")


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "sink"
    channels = channels_for(mode)
    engine = make_engine(os.environ["WINBACK_DATABASE_URL"])
    rate = float(os.environ.get("CRASH_SENDER_RATE", "100"))
    now = dt.datetime.fromisoformat(os.environ["CRASH_SENDER_NOW"])
    limits = SendLimits(email_per_second=rate, sms_per_second=rate, concurrency=4)
    report = send_due(engine, channels, now=now, limits=limits)
    print(json.dumps(report.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
