"""Quiet hours: a message that would arrive at night waits for the recipient's morning."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "UTC"


def next_allowed(now: dt.datetime, time_zone: str | None, start_hour: int = 8, end_hour: int = 21) -> dt.datetime:
    """The first moment at or after `now` (aware) inside [start_hour, end_hour) local time, in UTC.

    An unknown or missing zone falls back to UTC rather than failing the batch.
    """
    try:
        zone = ZoneInfo(time_zone or DEFAULT_TZ)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(DEFAULT_TZ)
    local = now.astimezone(zone)
    if start_hour <= local.hour < end_hour:
        return now.astimezone(dt.UTC)
    day = local.date() if local.hour < start_hour else local.date() + dt.timedelta(days=1)
    opening = dt.datetime.combine(day, dt.time(start_hour), tzinfo=zone)
    return opening.astimezone(dt.UTC)
