"""Retention: a per-tenant number of days after which message bodies, raw order payloads
and inbound texts are purged, and the index that makes finding them cheap.

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


def downgrade() -> None:
    op.drop_index("ix_messages_purgeable", table_name="messages")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("retention_days")
