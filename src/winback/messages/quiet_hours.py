"""Quiet hours: a message that would arrive at night waits for the recipient's morning.

Checked twice: when a message is queued (its `not_before`) and again when it is claimed for sending,
since a retry, a late hourly dispatch or a slow send can otherwise reach the recipient at night. For the
second check a queued row carries its recipient's zone and the campaign's quiet hours in its context
(`send_window_context`); the sender reads them back with `send_window`.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "UTC"
ALLOWED_FROM_HOUR = 8  # local hour sending opens (a campaign's `quiet_end_hour`)
ALLOWED_UNTIL_HOUR = 21  # local hour sending closes (a campaign's `quiet_start_hour`)
ZONE_KEY = "time_zone"  # outbox context: the recipient's zone (None: unknown, checked as UTC)
QUIET_HOURS_KEY = "quiet_hours"  # outbox context: [quiet_start_hour, quiet_end_hour] of the campaign


@functools.lru_cache(maxsize=1024)
def zone_info(name: str | None) -> ZoneInfo | None:
    """The zone called `name`, or None when there is no such zone.

    Profiles hold anything: "Pacific Time" (not found), "America" (a directory of the tz database:
    IsADirectoryError), "" or "../x" (ValueError). None of them may stop a batch. Cached, failures
    included: ZoneInfo caches only the zones it found, and a bad name repeats across a whole campaign.
    """
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def valid_zone(name: str | None) -> str | None:
    """`name` without surrounding spaces when it names a zone, else None."""
    return name.strip() if zone_info(name) is not None else None  # type: ignore[union-attr]


def is_allowed_hour(hour: int, start_hour: int, end_hour: int) -> bool:
    """Whether local `hour` is inside [start_hour, end_hour), a window that may run past midnight.

    Equal bounds mean no quiet hours at all (a campaign with quiet_start_hour == quiet_end_hour).
    """
    if start_hour == end_hour:
        return True
    if start_hour < end_hour:
        return start_hour <= hour < end_hour
    return hour >= start_hour or hour < end_hour


def next_allowed(
    now: dt.datetime, time_zone: str | None, start_hour: int = ALLOWED_FROM_HOUR, end_hour: int = ALLOWED_UNTIL_HOUR
) -> dt.datetime:
    """The first moment at or after `now` (aware) inside [start_hour, end_hour) local time, in UTC.

    An unknown or missing zone falls back to UTC rather than failing the batch.
    """
    zone = zone_info(time_zone) or ZoneInfo(DEFAULT_TZ)
    local = now.astimezone(zone)
    if is_allowed_hour(local.hour, start_hour, end_hour):
        return now.astimezone(dt.UTC)
    day = local.date() if local.hour < start_hour else local.date() + dt.timedelta(days=1)
    opening = dt.datetime.combine(day, dt.time(start_hour), tzinfo=zone)
    return opening.astimezone(dt.UTC)


def send_window_context(
    time_zone: str | None, quiet_start_hour: int = ALLOWED_UNTIL_HOUR, quiet_end_hour: int = ALLOWED_FROM_HOUR
) -> dict[str, Any]:
    """What an outbox row's context stores so that the sender can re-check quiet hours at send time."""
    return {ZONE_KEY: time_zone, QUIET_HOURS_KEY: [quiet_start_hour, quiet_end_hour]}


SendWindow = tuple[str | None, int, int]  # (zone, allowed from hour, allowed until hour): next_allowed's arguments


def send_window(context: dict[str, Any]) -> SendWindow | None:
    """The zone and allowed hours a queued row was planned with, or None when it carries no zone.

    Rows queued before zones were stored in the context have none: they are sent as before, with no
    send-time check, rather than guessed at (their queue-time `not_before` already honoured quiet hours).
    Missing or malformed quiet hours fall back to the defaults.
    """
    if ZONE_KEY not in context:
        return None
    zone = context[ZONE_KEY] if isinstance(context[ZONE_KEY], str) else None
    quiet = context.get(QUIET_HOURS_KEY)
    if isinstance(quiet, list | tuple) and len(quiet) == 2:
        start, end = quiet
        if type(start) is int and type(end) is int and 0 <= start <= 23 and 0 <= end <= 23:
            return zone, end, start
    return zone, ALLOWED_FROM_HOUR, ALLOWED_UNTIL_HOUR


class QuietHoursCheck:
    """Which claimed rows must wait, as of one moment: next_allowed once per distinct window in a claim."""

    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment
        self._opens: dict[SendWindow, dt.datetime | None] = {}

    def held_until(self, context: dict[str, Any]) -> dt.datetime | None:
        """When this row may go if it may not go now, else None (also for rows queued without a zone)."""
        window = send_window(context)
        if window is None:
            return None
        if window not in self._opens:
            opens = next_allowed(self.moment, *window)
            self._opens[window] = opens if opens > self.moment else None
        return self._opens[window]
