"""How fast and how often a sender may call the providers: per-channel rates, calls in flight, retries."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from winback.settings import Settings
from winback.warehouse import rate_buckets


@dataclass(frozen=True)
class RetryPolicy:
    """When a retryable failure may be tried again, and after how many attempts it is given up."""

    max_attempts: int = 5
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
        backoff = random.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))
        return max(backoff, retry_after or 0.0)


class SharedRateLimiter:
    """A channel's rate, kept by every sender together: tokens come from its bucket in the state database.

    Each sender (any process, any machine) takes its tokens from the one bucket per channel
    (`warehouse.rate_buckets`), so N senders together stay within `per_second` on average, with bursts of up
    to one second's worth (`capacity`). Tokens are taken a few at a time (about 1/20 s of the rate) and
    handed out to this sender's threads, so the database sees about 20 short transactions a second per
    sender and channel, not one per message. A take that finds too few tokens waits for the refill.
    """

    TAKE_SECONDS = 0.05  # tokens taken per round trip: this much of a second's rate

    def __init__(self, engine: Engine, channel: str, per_second: float, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.channel, self.per_second, self.clock = engine, channel, per_second, clock
        self.capacity = max(1.0, per_second)
        self.chunk = max(1, int(per_second * self.TAKE_SECONDS))
        self._held = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until a send is allowed by the shared rate (blocking, thread-safe)."""
        with self._lock:  # one thread takes from the bucket at a time; the others wait for its tokens
            while self._held == 0:
                now = self.clock()
                with self.engine.begin() as conn:
                    if rate_buckets.take(conn, self.channel, self.chunk, self.per_second, self.capacity, now):
                        self._held = self.chunk
                        break
                with self.engine.connect() as conn:
                    wait = rate_buckets.seconds_until(
                        conn, self.channel, self.chunk, self.per_second, self.capacity, now
                    )
                time.sleep(max(wait, 0.001))
            self._held -= 1


@dataclass(frozen=True)
class SendLimits:
    """Per-channel messages per second (shared by every sender), in-flight calls per sender, and senders.

    From WINBACK_EMAIL_RATE, WINBACK_SMS_RATE, WINBACK_SEND_CONCURRENCY and WINBACK_SENDERS (default: one per
    CPU; the most concurrent senders a large send starts, see delivery.senders), read once at the edge with
    `from_settings`. `concurrency` is also the most messages a crash can leave `unknown`: only rows whose
    call has started can be.
    """

    email_per_second: float = 100.0
    sms_per_second: float = 10.0
    concurrency: int = 8
    senders: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> SendLimits:
        """The limits the settings configure; WINBACK_SENDERS unset means one per CPU."""
        return cls(
            email_per_second=settings.email_rate,
            sms_per_second=settings.sms_rate,
            concurrency=settings.send_concurrency,
            senders=settings.senders or os.cpu_count() or 1,
        )

    def rate(self, channel: str) -> float:
        """Messages per second allowed on `channel` (email or sms), across every sender."""
        return self.sms_per_second if channel == "sms" else self.email_per_second
