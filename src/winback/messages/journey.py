"""The service-recovery journey: which messages a failure earns, and when.

    complaint (unresolved)  → apology now (with the compensation at once when severe) → follow-up in N days
    ticket closed           → "it's sorted" now, with the compensation if it was not given yet
                              (and the apology folded in when no complaint came before)

Later steps (`warehouse.journeys.LATER_STEPS`) stop when the customer comes back or opts out (checked
when they are due, by the dispatcher); a newer failure supersedes the steps still waiting from an older one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

RESOLVED_TYPES = ("ticket.closed", "complaint.resolved")


@dataclass(frozen=True)
class JourneyRules:
    """How a service-recovery journey is paced.

    The follow-up comes `follow_up_days` after the event that opens the journey; from severity
    `offer_at_once_min_severity` on, the apology carries the compensation at once instead of waiting for the
    ticket to close.
    """

    follow_up_days: int = 7
    offer_at_once_min_severity: int = 4


@dataclass(frozen=True)
class JourneyStep:
    """One message of a journey: its step (and template), when it is due, and whether it carries the offer."""

    step: str  # apology | resolved | follow_up; also the template's name
    at: dt.datetime
    with_offer: bool


def plan_steps(
    event_type: str,
    severity: int,
    now: dt.datetime,
    *,
    has_offer: bool,
    steps_so_far: set[str],
    offer_given: bool,
    rules: JourneyRules = JourneyRules(),
) -> list[JourneyStep]:
    """The steps this event adds to a journey that has already queued `steps_so_far`."""
    resolved = event_type in RESOLVED_TYPES
    severe = severity >= rules.offer_at_once_min_severity
    steps: list[JourneyStep] = []
    if not resolved and "apology" not in steps_so_far:
        steps.append(JourneyStep("apology", now, has_offer and severe and not offer_given))
    if resolved and "resolved" not in steps_so_far:
        offer_now = has_offer and not offer_given and not (severe and "apology" in steps_so_far)
        steps.append(JourneyStep("resolved", now, offer_now))
    if "follow_up" not in steps_so_far:
        steps.append(JourneyStep("follow_up", now + dt.timedelta(days=rules.follow_up_days), False))
    return steps
