"""The initial schema: every table, index and constraint of ``store/tables.py``.

Written out in full (not imported from tables.py) so that later changes to the tables
need their own migration. ``ix_messages_due`` and ``ix_messages_leased`` are partial
indexes on both engines; the queue's claim and rescue statements use them.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    """BIGINT ids on PostgreSQL; INTEGER (the rowid alias) on SQLite."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    """UTC times: TIMESTAMP WITH TIME ZONE on PostgreSQL, naive UTC text on SQLite."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audit_log_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "customers",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("preferences", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("erased_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "locations",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("quiet_start", sa.String(length=5), nullable=False),
        sa.Column("quiet_end", sa.String(length=5), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_locations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
        sa.UniqueConstraint("tenant_id", "slug", name="uq_locations_tenant_slug"),
    )
    op.create_table(
        "templates",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("part", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_templates_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("tenant_id", "name", "locale", "part", name="uq_templates_key"),
    )
    op.create_table(
        "channels",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("location_id", _id(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("family", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_channels_location_id_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_channels_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_channels_tenant_name"),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("customer_id", _id(), nullable=False),
        sa.Column("family", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_consent_events_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_consent_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index(
        "ix_consent_events_customer", "consent_events", ["customer_id", "family"], unique=False
    )

    op.create_table(
        "contact_points",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("customer_id", _id(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("usable", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_contact_points_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_contact_points_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_points")),
        sa.UniqueConstraint("tenant_id", "kind", "value", name="uq_contact_points_value"),
    )
    op.create_index("ix_contact_points_customer", "contact_points", ["customer_id"], unique=False)

    op.create_table(
        "integrations",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("location_id", _id(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_integrations_location_id_locations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_integrations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("key", name=op.f("uq_integrations_key")),
    )
    op.create_table(
        "rules",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("location_id", _id(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("fulfillment", sa.String(length=16), nullable=True),
        sa.Column("audience", sa.String(length=100), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=True),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_after_seconds", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_rules_location_id_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_rules_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
    )
    op.create_table(
        "orders",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("location_id", _id(), nullable=True),
        sa.Column("integration_id", _id(), nullable=True),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("customer_id", _id(), nullable=True),
        sa.Column("fulfillment", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("status_at", _utc(), nullable=False),
        sa.Column("placed_at", _utc(), nullable=False),
        sa.Column("promised_at", _utc(), nullable=True),
        sa.Column("eta", _utc(), nullable=True),
        sa.Column("tracking_url", sa.Text(), nullable=True),
        sa.Column("tracking_token", sa.String(length=64), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("source_version", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_orders_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_orders_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_orders_location_id_locations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_orders_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("source_key", "external_id", name="uq_orders_source_external"),
        sa.UniqueConstraint("tracking_token", name=op.f("uq_orders_tracking_token")),
    )
    op.create_index("ix_orders_customer", "orders", ["customer_id"], unique=False)
    op.create_index("ix_orders_tenant_updated", "orders", ["tenant_id", "updated_at"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("order_id", _id(), nullable=True),
        sa.Column("customer_id", _id(), nullable=True),
        sa.Column("trigger", sa.String(length=24), nullable=False),
        sa.Column("audience", sa.String(length=100), nullable=False),
        sa.Column("family", sa.String(length=16), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("skip_reason", sa.String(length=24), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", _utc(), nullable=True),
        sa.Column("claim_token", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("encoding", sa.String(length=8), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("delivered_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_messages_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_messages_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_messages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_messages_idempotency_key")),
    )
    op.create_index(
        "ix_messages_due",
        "messages",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("state = 'planned'"),
        sqlite_where=sa.text("state = 'planned'"),
    )
    op.create_index(
        "ix_messages_leased",
        "messages",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("state = 'sending'"),
        sqlite_where=sa.text("state = 'sending'"),
    )
    op.create_index("ix_messages_order", "messages", ["order_id"], unique=False)
    op.create_index("ix_messages_provider_id", "messages", ["provider_message_id"], unique=False)
    op.create_index("ix_messages_tenant_id", "messages", ["tenant_id", "id"], unique=False)

    op.create_table(
        "order_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("order_id", _id(), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=270), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("occurred_at", _utc(), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_events_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_order_events_dedupe_key")),
    )
    op.create_index("ix_order_events_order", "order_events", ["order_id", "id"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("message_id", _id(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("started_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attempts_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index("ix_attempts_message", "attempts", ["message_id"], unique=False)

    op.create_table(
        "message_log",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("message_id", _id(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_log_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_log")),
    )
    op.create_index("ix_message_log_message", "message_log", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_table("message_log")
    op.drop_table("attempts")
    op.drop_table("order_events")
    op.drop_table("messages")
    op.drop_table("orders")
    op.drop_table("rules")
    op.drop_table("integrations")
    op.drop_table("contact_points")
    op.drop_table("consent_events")
    op.drop_table("channels")
    op.drop_table("templates")
    op.drop_table("locations")
    op.drop_table("customers")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("tenants")
