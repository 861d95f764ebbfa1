"""Retention: a per-tenant number of days after which message bodies, raw order payloads
and inbound texts are purged, and the index that makes finding them cheap; and the
suppression list that keeps an erased guest's opt-outs (keyed hashes, no contact values).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_index(
        "ix_messages_purgeable",
        "messages",
        ["created_at"],
        postgresql_where=sa.text("body IS NOT NULL"),
        sqlite_where=sa.text("body IS NOT NULL"),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "tenant_id", "kind", "fingerprint", "family", "purpose", name="uq_suppressions"
        ),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index("ix_messages_purgeable", table_name="messages")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("retention_days")
