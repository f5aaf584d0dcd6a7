"""The demo's source tables: customers, orders, service failures and consents, as the demo creates them.

They belong to the business in a real deployment: a warehouse maps its own tables onto these shapes with
`warehouse.source.SourceMapping`, and winback never writes to them. A separate metadata from winback's own
tables (`warehouse.models.Base`), since winback does not migrate a business's data.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from winback.warehouse.models import NAMING_CONVENTION, Money


class SourceBase(DeclarativeBase):
    """The demo's source tables: a separate metadata, because winback does not migrate a business's data."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: DateTime(timezone=True), Decimal: Money}


class DemoCustomer(SourceBase):
    """The demo's customers: contact details, preferences and the flags that forbid contact."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(16))
    time_zone: Mapped[str] = mapped_column(String(48))
    preferred_channel: Mapped[str | None] = mapped_column(String(8))
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    fraud_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    signed_up_at: Mapped[dt.datetime]


class DemoOrder(SourceBase):
    """The demo's orders: what recency, frequency and spend are computed from."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_customer_time_amount", "customer_id", "ordered_at", "amount"),)

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    ordered_at: Mapped[dt.datetime]
    amount: Mapped[Decimal]
    coupon_code: Mapped[str | None] = mapped_column(String(32))


class DemoServiceFailure(SourceBase):
    """The demo's service failures: what went wrong for a customer, and when it was resolved."""

    __tablename__ = "service_failures"
    __table_args__ = (Index("ix_service_failures_customer", "customer_id", "occurred_at"),)

    failure_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
    description: Mapped[str | None] = mapped_column(Text)


class DemoConsent(SourceBase):
    """The demo's consent records: per customer and channel, whether contact was granted."""

    __tablename__ = "consents"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime]
