"""CRM events (complaints, ticket updates) received by `winback serve`: their shape, and the ledger.

The ledger is wb_crm_events, keyed by the CRM's own event id: a redelivered event is recorded once and
triggers one recovery. The service-recovery flow (winback.recovery) reads the payload back from there.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection

from winback.warehouse.insert_once import insert_if_absent
from winback.warehouse.models import CrmEvent

CATEGORIES = ("late_delivery", "damaged_item", "wrong_item", "billing_error", "rude_staff", "outage")
Category = Literal["late_delivery", "damaged_item", "wrong_item", "billing_error", "rude_staff", "outage"]
RECOVERY_KINDS = ("complaint", "ticket")


def starts_recovery(event_type: str) -> bool:
    """Whether an event of this type starts or extends a recovery journey (complaint.*, ticket.*).

    Every message of such a journey names what went wrong, so these events must carry a category;
    other events are recorded and left alone by winback.recovery.
    """
    return event_type.split(".", 1)[0] in RECOVERY_KINDS


class CrmEventIn(BaseModel):
    """One CRM event as posted to `POST /crm/events`. Unknown extra fields are kept in the payload."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    type: str = Field(
        min_length=3,
        max_length=48,
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
        description="dotted lower-case name: complaint.created, ticket.updated, ticket.closed, ...",
    )
    customer_id: str = Field(min_length=1, max_length=64)
    order_id: str | None = Field(None, min_length=1, max_length=64)
    ticket_id: str | None = Field(None, min_length=1, max_length=128)
    category: Category | None = Field(None, validate_default=True, description="required for complaint.*, ticket.*")
    severity: int | None = Field(None, ge=1, le=5, strict=True)
    occurred_at: AwareDatetime | None = Field(None, description="ISO 8601 with a zone offset")
    description: str | None = Field(None, max_length=10_000)

    @field_validator("event_id", "customer_id", "order_id", "ticket_id", "description")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        """PostgreSQL text cannot hold NUL: refused here (422) rather than failing the insert (500)."""
        if value is not None and "\x00" in value:
            raise PydanticCustomError("nul_character", "must not contain a NUL character")
        return value

    @field_validator("category")
    @classmethod
    def _category_names_the_failure(cls, category: str | None, info: ValidationInfo) -> str | None:
        """Refuse a recovery event without a category here, not later.

        Without a category recovery could only send a generic apology, which it refuses, so an accepted
        event would be retried by the sweeper forever.
        """
        event_type = info.data.get("type")
        if category is None and event_type and starts_recovery(event_type):
            raise PydanticCustomError(
                "missing",
                "required for {event_type} events: every recovery message names what went wrong",
                {"event_type": event_type},
            )
        return category


def parse_crm_event(body: bytes) -> CrmEventIn:
    """Validate a raw JSON body; raises pydantic.ValidationError (see `problems`)."""
    return CrmEventIn.model_validate_json(body)


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """`[{"field": "severity", "problem": "..."}]`, without echoing the input (it may hold personal data)."""
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"field": ".".join(loc) or "body", "problem": err.get("msg", "invalid")})
    return out


def record_crm_event(conn: Connection, event: CrmEventIn, received_at: dt.datetime) -> bool:
    """Record an event in wb_crm_events; True when it is new, False for a redelivery (nothing changes)."""
    values = {
        "event_id": event.event_id,
        "type": event.type,
        "customer_id": event.customer_id,
        "payload": event.model_dump(mode="json"),
        "received_at": received_at,
    }
    return insert_if_absent(conn, CrmEvent.__table__, values, "event_id")
