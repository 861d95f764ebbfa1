"""Follow-ups: the delay timer of each order being prepared, and the indexes that
feedback requests and the override audit trail read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "order_timers",
        sa.Column("order_id", _ID, nullable=False),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("announcements", sa.Integer(), nullable=False),
        sa.Column("late_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_timers_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_timers")),
    )
    op.create_index(
        "ix_order_timers_check",
        "order_timers",
        ["check_at"],
        unique=False,
        postgresql_where=sa.text("check_at IS NOT NULL"),
        sqlite_where=sa.text("check_at IS NOT NULL"),
    )
    op.create_index(
        "ix_messages_feedback",
        "messages",
        ["customer_id", "due_at"],
        unique=False,
        postgresql_where=sa.text("trigger = 'feedback'"),
        sqlite_where=sa.text("trigger = 'feedback'"),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["tenant_id", "target", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index("ix_messages_feedback", table_name="messages")
    op.drop_index("ix_order_timers_check", table_name="order_timers")
    op.drop_table("order_timers")
