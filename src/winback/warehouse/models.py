"""winback's own tables (the demo's source tables are in `warehouse.source_models`).

Source tables (customers, orders, service failures, consents) belong to the business; winback reads them
through `warehouse.source.SourceMapping` and never writes to them, except the demo which creates its own.
winback's tables carry the `wb_` prefix so they can live in the same schema as the business's data.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(12, 2)


class SerialisedJSON(TypeDecorator[Any]):
    """A JSON column that also takes values already serialised (text), as they are.

    A million decisions' features are serialised by pandas in one call (``to_json(lines=True)``), several
    times faster than one ``json.dumps`` per row; the text must then reach the column unchanged, not be
    serialised a second time as a JSON string. Anything else (a dict) is serialised as JSON would be.
    """

    impl = JSON
    cache_ok = True
    passes_text = True  # warehouse.bulk binds a column of text (and None) as it is, without calling process

    def bind_processor(self, dialect: Dialect) -> Any:
        """The dialect's JSON serialiser, passing text through unchanged."""
        inner = self.impl_instance.bind_processor(dialect)

        def process(value: Any) -> Any:
            if value is None or isinstance(value, str) or inner is None:
                return value
            return inner(value)

        return process


class Base(DeclarativeBase):
    """winback's tables: what Alembic migrates."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dt.date: Date,
        Decimal: Money,
        dict[str, Any]: JSON,
    }


class Campaign(Base):
    """A named, configured campaign; scheduled deployments run it repeatedly."""

    __tablename__ = "wb_campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # winback | recovery
    config: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]

    def __repr__(self) -> str:
        return f"Campaign(id={self.id!r}, kind={self.kind!r})"


class CampaignRun(Base):
    """One execution of a campaign for one as-of date; re-running the same date resumes this row."""

    __tablename__ = "wb_campaign_runs"
    __table_args__ = (
        UniqueConstraint("campaign_id", "as_of", "journey_key", name="uq_wb_campaign_runs_campaign_as_of"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("wb_campaigns.id"))
    as_of: Mapped[dt.datetime]
    # "" for scheduled runs; for a service-recovery journey, the ticket it answers (one run per ticket)
    journey_key: Mapped[str] = mapped_column(String(128), default="", index=True)
    status: Mapped[str] = mapped_column(String(16))  # started | decided | sent | completed
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def __repr__(self) -> str:
        return f"CampaignRun(id={self.id}, campaign_id={self.campaign_id!r}, as_of={self.as_of})"


class Decision(Base):
    """One row per customer considered by a run: what was decided and, in words, why."""

    __tablename__ = "wb_decisions"
    __table_args__ = (
        UniqueConstraint("run_id", "customer_id", name="uq_wb_decisions_run_customer"),
        Index("ix_wb_decisions_customer", "customer_id", "run_id"),
        Index("ix_wb_decisions_run_action", "run_id", "action"),  # one action of a run: contacts, holdouts
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("wb_campaign_runs.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(16))  # lapsed | aggrieved
    action: Mapped[str] = mapped_column(String(16))  # contact | holdout | skip
    arm: Mapped[str | None] = mapped_column(String(16))  # treatment | holdout (None when skipped)
    failure_id: Mapped[str | None] = mapped_column(String(64))
    failure_category: Mapped[str | None] = mapped_column(String(32))
    severity: Mapped[int | None]
    p_active: Mapped[float | None]
    customer_value: Mapped[float | None]
    expected_gain: Mapped[float | None]
    offer_cost: Mapped[float | None]
    offer_kind: Mapped[str | None] = mapped_column(String(24))
    offer_value: Mapped[float | None]
    channel: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[dt.datetime]
    # the customer's last order before the run's as-of, to the millisecond (None: no orders): kept so the
    # messages need not aggregate the orders again, and so a decision shows how lapsed the customer was
    last_order_at: Mapped[dt.datetime | None]
    # what the offer is worth in money after the policy's caps: a percent code's most it may take off
    offer_amount: Mapped[float | None]
    # what the decision knew (segments.decision_features): an uplift model trains on these, never on what
    # happened after the decision; None for a skip (in no arm) and for decisions recorded before revision 0005
    features: Mapped[dict[str, Any] | None] = mapped_column(SerialisedJSON)
    # the uplift model's predicted effect of the decided message on the return probability (None: no model)
    predicted_uplift: Mapped[float | None]
    # its predicted effect on the spend inside the attribution window, in money (None: no validated spend model)
    predicted_spend_uplift: Mapped[float | None]
    # the message/offer variant the customer was randomised to (None: the campaign declares none, or held out)
    variant: Mapped[str | None] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"Decision(run_id={self.run_id}, customer_id={self.customer_id!r}, action={self.action!r})"


class Offer(Base):
    """A single-use coupon issued to one customer by one run."""

    __tablename__ = "wb_offers"
    __table_args__ = (UniqueConstraint("run_id", "customer_id", name="uq_wb_offers_run_customer"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("wb_campaign_runs.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))  # percent_discount | store_credit | free_shipping | ...
    value: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    expected_cost: Mapped[Decimal]
    issued_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    redeemed_at: Mapped[dt.datetime | None]
    redeemed_order_id: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"Offer(code={self.code!r}, customer_id={self.customer_id!r}, kind={self.kind!r})"


class OutboxMessage(Base):
    """A message to send, committed before the provider call so a crash can neither lose nor repeat it.

    It holds the merge fields, not the rendered message: rendering happens at send time (a few hundred
    thousand rendered HTML bodies would weigh gigabytes); what was sent is recorded as subject + text.

    status: queued -> sending -> sent | failed | skipped; a row left in `sending` by a crash is reconciled
    (see warehouse.outbox): back to `queued` when its call never started (`started_at` empty), else `unknown`.
    """

    __tablename__ = "wb_outbox"
    __table_args__ = (
        UniqueConstraint("run_id", "customer_id", "step", name="uq_wb_outbox_run_customer_step"),
        Index("ix_wb_outbox_status", "status", "not_before"),  # `due` reads it in order, no sort (see 0008)
        Index("ix_wb_outbox_customer", "customer_id", "created_at"),
        Index("ix_wb_outbox_provider_message_id", "provider_message_id"),  # status callbacks find rows by it
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # deterministic: hash(run, customer, step)
    run_id: Mapped[int] = mapped_column(ForeignKey("wb_campaign_runs.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(24))  # apology | offer | follow_up | winback
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(320))  # as the CRM holds it; validated at send time
    context: Mapped[dict[str, Any]] = mapped_column(SerialisedJSON)  # the merge fields; rendered at send time
    subject: Mapped[str | None] = mapped_column(Text)  # what was sent, filled in when it is sent
    body_text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(96))  # host:pid:token of the sender holding it
    claimed_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]  # committed just before its provider call: only then can it be unknown
    last_error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"OutboxMessage(id={self.id!r}, channel={self.channel!r}, status={self.status!r})"


class OutboxHistory(Base):
    """What moved an outbox row outside a plain send, and why: a crash settled, a provider lookup, an operator."""

    __tablename__ = "wb_outbox_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    outbox_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[dt.datetime]
    from_status: Mapped[str] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    actor: Mapped[str] = mapped_column(String(32))  # reconcile | twilio lookup | operator
    reason: Mapped[str] = mapped_column(Text)


class MessageEvent(Base):
    """A provider event (delivered, open, click, bounce, ...) for an outbox message; dedupe by event id."""

    __tablename__ = "wb_message_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_key: Mapped[str] = mapped_column(String(128), unique=True)
    outbox_id: Mapped[str | None] = mapped_column(String(40), index=True)
    event_type: Mapped[str] = mapped_column(String(24))
    occurred_at: Mapped[dt.datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Suppression(Base):
    """An opt-out, bounce or complaint recorded by winback; honoured at selection and again at send."""

    __tablename__ = "wb_suppressions"
    __table_args__ = (UniqueConstraint("customer_id", "channel", name="uq_wb_suppressions_customer_channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))  # unsubscribe | stop | bounce | spamreport
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class Return(Base):
    """Whether a considered customer (treated or held out) ordered again inside the attribution window."""

    __tablename__ = "wb_returns"
    __table_args__ = (UniqueConstraint("run_id", "customer_id", name="uq_wb_returns_run_customer"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("wb_campaign_runs.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    arm: Mapped[str] = mapped_column(String(16))
    returned: Mapped[bool] = mapped_column(Boolean)
    first_return_at: Mapped[dt.datetime | None]
    orders: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[Decimal]
    redeemed: Mapped[bool] = mapped_column(Boolean)
    window_days: Mapped[int] = mapped_column(Integer)
    tracked_at: Mapped[dt.datetime]


class CrmEvent(Base):
    """The ledger of CRM events received; the unique event id makes a redelivery a no-op."""

    __tablename__ = "wb_crm_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(48))
    customer_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[dt.datetime]
    processed_at: Mapped[dt.datetime | None]  # set once its recovery has run; the sweeper retries the rest


class QuarantinedRow(Base):
    """A source row (or one value of it) the data-quality gate set aside in a run, and why: what people fix.

    scope "row": the row was not used at all (a bad amount, an unknown customer); "field": only the value was
    not (an invalid phone number, so no SMS), the row went on with the fallback the problem names. Values are
    masked where they are personal data, and cut short.
    """

    __tablename__ = "wb_quarantine"
    __table_args__ = (Index("ix_wb_quarantine_run_table", "run_id", "source_table"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("wb_campaign_runs.id"))
    source_table: Mapped[str] = mapped_column(String(128))
    record_id: Mapped[str | None] = mapped_column(String(128))
    customer_id: Mapped[str | None] = mapped_column(String(128))
    field: Mapped[str] = mapped_column(String(128))
    value: Mapped[str | None] = mapped_column(Text)
    problem: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(8))  # row | field
    recorded_at: Mapped[dt.datetime]


class RateBucket(Base):
    """A channel's token bucket, shared by every sender on this state database (warehouse.rate_buckets).

    `tokens` as of `updated_at` (epoch seconds, the senders' clocks); `version` moves on every take, so a
    sender's compare-and-set fails when another sender took tokens meanwhile.
    """

    __tablename__ = "wb_rate_buckets"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    version: Mapped[int] = mapped_column(BigInteger)
