"""How fast and how often a sender may call the providers: per-channel rates, calls in flight, retries."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, replace

from winback.settings import Settings


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


class RateLimiter:
    """A token bucket: at most `per_second` sends on average, bursts up to one second's worth."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._tokens = per_second
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until a send is allowed by the rate (blocking, thread-safe)."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.per_second, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.per_second
            time.sleep(wait)


@dataclass(frozen=True)
class SendLimits:
    """Per-channel messages per second, in-flight concurrency and sender processes.

    From WINBACK_EMAIL_RATE, WINBACK_SMS_RATE, WINBACK_SEND_CONCURRENCY and WINBACK_SEND_PROCESSES
    (default: one per CPU; used only for large sends, see delivery.parallel_send). `concurrency` is also
    the most messages a crash can leave `unknown`: only rows whose call has started can be.
    """

    email_per_second: float = 100.0
    sms_per_second: float = 10.0
    concurrency: int = 8
    processes: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> SendLimits:
        """The limits the settings configure; WINBACK_SEND_PROCESSES unset means one per CPU."""
        return cls(
            email_per_second=settings.email_rate,
            sms_per_second=settings.sms_rate,
            concurrency=settings.send_concurrency,
            processes=settings.send_processes or os.cpu_count() or 1,
        )

    @classmethod
    def from_env(cls) -> SendLimits:
        """The environment's limits: for a caller that was handed none."""
        return cls.from_settings(Settings())

    def shared_by(self, senders: int) -> SendLimits:
        """Each of `senders` parallel senders' part: together they keep the per-channel rates."""
        return replace(
            self,
            email_per_second=self.email_per_second / senders,
            sms_per_second=self.sms_per_second / senders,
            processes=1,
        )
