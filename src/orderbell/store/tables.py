"""The schema, as SQLAlchemy Core tables. Alembic migrations are written from this.

Ids are integers (BIGINT on PostgreSQL). Times are stored in UTC (timezone-aware on
PostgreSQL, naive-UTC on SQLite; ``UtcDateTime`` hides the difference). Enumerated
values are plain strings holding the domain enums' values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import JSON, TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python on both engines."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _pk() -> Column[Any]:
    return Column("id", Id, primary_key=True, autoincrement=True)


def _created() -> Column[Any]:
    return Column("created_at", UtcDateTime(), nullable=False)


tenants = Table(
    "tenants",
    metadata,
    _pk(),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    _created(),
    #: purge message bodies, raw payloads and inbound texts after this many days (None: keep)
    Column("retention_days", Integer),
)

api_keys = Table(
    "api_keys",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),  # shown in listings: "ob_live_ab12"
    Column("key_hash", String(128), nullable=False, unique=True),  # sha256 hex of the key
    _created(),
    Column("revoked_at", UtcDateTime()),
)

locations = Table(
    "locations",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("locale", String(16), nullable=False, default="en"),
    Column("currency", String(3), nullable=False, default="USD"),
    Column("phone", String(32)),
    Column("address", Text),
    Column("quiet_start", String(5), nullable=False, default="20:00"),
    Column("quiet_end", String(5), nullable=False, default="08:00"),
    Column("settings", JSON, nullable=False, default=dict),
    _created(),
    UniqueConstraint("tenant_id", "slug", name="uq_locations_tenant_slug"),
)

integrations = Table(
    "integrations",
    metadata,
    _pk(),
    Column("key", String(64), nullable=False, unique=True),  # the {integration_id} in URLs
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="SET NULL")),
    Column("source", String(32), nullable=False),  # sources registry key
    Column("settings", JSON, nullable=False, default=dict),  # non-secret settings
    Column("secrets", Text),  # Fernet token of a JSON object of secret settings
    Column("enabled", Boolean, nullable=False, default=True),
    _created(),
)

channels = Table(
    "channels",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="CASCADE")),  # None: all
    Column("name", String(64), nullable=False),  # referenced by rules and messages
    Column("provider", String(32), nullable=False),  # channels registry key
    Column("family", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=100),  # lower is tried first
    Column("settings", JSON, nullable=False, default=dict),
    Column("secrets", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    _created(),
    UniqueConstraint("tenant_id", "name", name="uq_channels_tenant_name"),
)

rules = Table(
    "rules",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="CASCADE")),  # None: all
    Column("position", Integer, nullable=False, default=0),
    Column("trigger", String(32), nullable=False),
    Column("fulfillment", String(16)),
    Column("audience", String(100), nullable=False, default="guest"),
    Column("channels", JSON, nullable=False, default=list),
    Column("template", String(100)),
    Column("delay_seconds", Integer, nullable=False, default=0),
    Column("expires_after_seconds", Integer),
    Column("purpose", String(16), nullable=False, default="transactional"),
    Column("enabled", Boolean, nullable=False, default=True),
)

templates = Table(
    "templates",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),  # e.g. "ready"
    Column("locale", String(16), nullable=False),  # e.g. "en", "es"
    Column("part", String(16), nullable=False),  # text | subject | html | voice
    Column("body", Text, nullable=False),
    UniqueConstraint("tenant_id", "name", "locale", "part", name="uq_templates_key"),
)

customers = Table(
    "customers",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200)),
    Column("locale", String(16)),
    Column("timezone", String(64)),
    Column("preferences", JSON, nullable=False, default=list),  # ordered channel families
    _created(),
    Column("erased_at", UtcDateTime()),
)

contact_points = Table(
    "contact_points",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", String(320), nullable=False),  # E.164, lower-cased email, platform id
    Column("usable", Boolean, nullable=False, default=True),
    Column("note", String(200)),  # e.g. "hard bounce 2026-11-28"
    _created(),
    UniqueConstraint("tenant_id", "kind", "value", name="uq_contact_points_value"),
    Index("ix_contact_points_customer", "customer_id"),
)

#: Opt-outs of erased guests, kept without the contact value: a keyed hash of (kind,
#: value) only. A new guest with that contact point starts opted out again, so erasing
#: someone's data never undoes their STOP.
suppressions = Table(
    "suppressions",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("family", String(16), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("opted_out_at", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    _created(),
    UniqueConstraint(
        "tenant_id", "kind", "fingerprint", "family", "purpose", name="uq_suppressions"
    ),
)

consent_events = Table(
    "consent_events",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("family", String(16), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("source", String(32), nullable=False),  # checkout, api, keyword, page, staff
    Column("evidence", Text),
    Column("actor", String(200)),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Index("ix_consent_events_customer", "customer_id", "family"),
)

orders = Table(
    "orders",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("location_id", Id, ForeignKey("locations.id", ondelete="SET NULL")),
    Column("integration_id", Id, ForeignKey("integrations.id", ondelete="SET NULL")),
    Column("source_key", String(64), nullable=False),  # integration key or "api:<tenant>"
    Column("external_id", String(128), nullable=False),
    Column("number", String(64), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id", ondelete="SET NULL")),
    Column("fulfillment", String(16), nullable=False, default="pickup"),
    Column("status", String(24), nullable=False),
    Column("status_at", UtcDateTime(), nullable=False),  # source time of the current status
    Column("placed_at", UtcDateTime(), nullable=False),
    Column("promised_at", UtcDateTime()),
    Column("eta", UtcDateTime()),
    Column("tracking_url", Text),
    Column("tracking_token", String(64), nullable=False, unique=True),
    Column("total_minor", BigInteger),
    Column("currency", String(3)),
    Column("source_version", String(64)),
    _created(),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("source_key", "external_id", name="uq_orders_source_external"),
    Index("ix_orders_tenant_updated", "tenant_id", "updated_at"),
    Index("ix_orders_customer", "customer_id"),
)

order_events = Table(
    "order_events",
    metadata,
    _pk(),
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("source_key", String(64), nullable=False),
    Column("event_id", String(200), nullable=False),  # the source's id for this delivery
    #: unique per source; NULL on rows that record a duplicate delivery
    Column("dedupe_key", String(270), unique=True),
    Column("kind", String(16), nullable=False),  # webhook | api | manual
    Column("status", String(24)),
    Column("outcome", String(16), nullable=False),
    Column("note", Text),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("payload", Text),  # the raw body as received
    Index("ix_order_events_order", "order_id", "id"),
)

messages = Table(
    "messages",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE")),
    Column("customer_id", Id, ForeignKey("customers.id", ondelete="SET NULL")),
    Column("trigger", String(24), nullable=False),
    Column("audience", String(100), nullable=False),
    Column("family", String(16)),
    Column("channel", String(64)),  # configured channel name
    Column("provider", String(32)),  # provider used by the last attempt
    Column("recipient", String(320)),
    Column("template", String(100), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("skip_reason", String(24)),
    Column("reason", Text),  # in words: why sent, or why not (latest decision)
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UtcDateTime()),
    Column("claim_token", BigInteger, nullable=False, default=0),  # fencing token
    Column("claimed_by", String(64)),
    Column("provider_message_id", String(200)),
    Column("body", Text),
    Column("subject", Text),
    Column("segments", Integer),
    Column("encoding", String(8)),
    _created(),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Column("delivered_at", UtcDateTime()),
    Index("ix_messages_order", "order_id"),
    Index("ix_messages_tenant_id", "tenant_id", "id"),
    Index("ix_messages_provider_id", "provider_message_id"),
    # Claiming due work and rescuing expired leases touch only these partial indexes,
    # which stay small however many finished messages the table holds.
    Index(
        "ix_messages_due",
        "due_at",
        postgresql_where=sa.text("state = 'planned'"),
        sqlite_where=sa.text("state = 'planned'"),
    ),
    Index(
        "ix_messages_leased",
        "lease_until",
        postgresql_where=sa.text("state = 'sending'"),
        sqlite_where=sa.text("state = 'sending'"),
    ),
    # Retention finds the bodies still held, oldest first, without scanning the table.
    Index(
        "ix_messages_purgeable",
        "created_at",
        postgresql_where=sa.text("body IS NOT NULL"),
        sqlite_where=sa.text("body IS NOT NULL"),
    ),
)

attempts = Table(
    "attempts",
    metadata,
    _pk(),
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("channel", String(64)),
    Column("provider", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),  # sent | transient | permanent
    Column("http_status", Integer),
    Column("error_code", String(64)),
    Column("error", Text),
    Column("provider_message_id", String(200)),
    Column("latency_ms", Integer),
    Column("started_at", UtcDateTime(), nullable=False),
    Index("ix_attempts_message", "message_id"),
)

message_log = Table(
    "message_log",
    metadata,
    _pk(),
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("event", String(32), nullable=False),  # planned, skipped, retry, superseded, ...
    Column("detail", Text, nullable=False),
    Index("ix_message_log_message", "message_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE")),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200)),
    Column("detail", Text),
    Column("at", UtcDateTime(), nullable=False),
)

#: Webhooks verified and accepted whose order could not be fetched from the platform yet
#: (Square, Clover, Toast send ids only). Kept until the fetch succeeds, so none is lost.
inbox = Table(
    "inbox",
    metadata,
    _pk(),
    Column("integration_key", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("headers", JSON, nullable=False, default=dict),
    Column("state", String(16), nullable=False),  # pending | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try_at", UtcDateTime(), nullable=False),
    Column("last_error", Text),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index(
        "ix_inbox_due",
        "next_try_at",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
)

#: People who sign in to the dashboard. ``location_ids`` None: every location of the
#: tenant; otherwise the JSON list of the location ids they work at.
staff_users = Table(
    "staff_users",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # owner | manager | staff
    Column("location_ids", JSON),
    Column("password_hash", String(255), nullable=False),  # argon2id, PHC string
    _created(),
    Column("last_sign_in_at", UtcDateTime()),
    Column("disabled_at", UtcDateTime()),
)

#: Dashboard sessions, server side. The cookie holds a random token; only its SHA-256 is
#: kept. ``csrf_token`` is the synchronizer token every state-changing request must echo.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    _pk(),
    Column("staff_id", Id, ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64), nullable=False),
    _created(),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_staff_sessions_staff", "staff_id"),
)

#: The delay timer of an order still being prepared (see ``engine/followups.py``).
#: ``expected_at``: when the guest expects the order (the source's promise, the
#: location's preparation time, or the estimate last announced to them); ``basis`` says
#: which. ``check_at``: when the timer pass must look at the order next; NULL once the
#: order is ready, done or cancelled. ``late_since``: the expected time the order first
#: missed. ``incident``: NULL, ``open`` or ``resolved`` (the PagerDuty-style alert).
order_timers = Table(
    "order_timers",
    metadata,
    Column("order_id", Id, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True),
    Column("expected_at", UtcDateTime(), nullable=False),
    Column("basis", String(16), nullable=False),  # prep_time | promised | announced
    Column("check_at", UtcDateTime()),
    Column("announcements", Integer, nullable=False, default=0),
    Column("late_since", UtcDateTime()),
    Column("incident", String(16)),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The timer pass reads only this partial index: orders whose timer is armed.
    Index(
        "ix_order_timers_check",
        "check_at",
        postgresql_where=sa.text("check_at IS NOT NULL"),
        sqlite_where=sa.text("check_at IS NOT NULL"),
    ),
)

#: "Has this guest been asked for feedback lately?" reads only feedback messages.
Index(
    "ix_messages_feedback",
    messages.c.customer_id,
    messages.c.due_at,
    postgresql_where=sa.text("trigger = 'feedback'"),
    sqlite_where=sa.text("trigger = 'feedback'"),
)

#: An order's audit trail (manual overrides), newest first.
Index("ix_audit_log_target", audit_log.c.tenant_id, audit_log.c.target, audit_log.c.id)

# -- 0005: inbound messages and messaging windows (consent and two-way conversations) ----

#: When the guest last wrote to us from this contact point (opens the 24-hour WhatsApp /
#: Messenger windows). Erased with the contact point.
contact_points.append_column(Column("last_inbound_at", UtcDateTime()))

#: Every message a guest (or anyone) sent us on a two-way channel, with what we did about
#: it in words. ``sender`` and ``text`` are personal data: erased and purged by retention.
#: The unique key drops a provider's repeated delivery of the same inbound message.
inbound_messages = Table(
    "inbound_messages",
    metadata,
    _pk(),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id", ondelete="SET NULL")),
    Column("channel", String(64), nullable=False),
    Column("family", String(16), nullable=False),
    Column("provider_message_id", String(200), nullable=False),
    Column("sender", String(320)),
    Column("text", Text),
    Column("action", String(16), nullable=False),  # stop | start | help | inquiry | ignored
    Column("outcome", Text, nullable=False),  # in words: what we did about it
    Column("received_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "channel", "provider_message_id", name="uq_inbound_messages_key"),
    Index("ix_inbound_messages_customer", "customer_id", "received_at"),
)
