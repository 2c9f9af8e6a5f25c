"""alert state: severity, open/resolved lifecycle across runs, digests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

One row per episode of an alert (docs/alerts.md): opened by the first run
that raises its key, resolved by the first run that evaluates its kind
without raising it. ``open_key`` (unique, NULL once resolved) allows one open
episode per key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_key", sa.String(length=400), nullable=False),
        sa.Column("open_key", sa.String(length=400), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("location_id", sa.String(length=64), nullable=True),
        sa.Column("supplier_id", sa.String(length=64), nullable=True),
        sa.Column("ref", sa.String(length=128), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("measure", sa.Double(), nullable=True),
        sa.Column("opened_as_of", sa.Date(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("opened_run_id", sa.String(length=36), nullable=False),
        sa.Column("last_as_of", sa.Date(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_run_id", sa.String(length=36), nullable=False),
        sa.Column("notified_severity", sa.String(length=16), nullable=True),
        sa.Column("notified_measure", sa.Double(), nullable=True),
        sa.Column("notified_as_of", sa.Date(), nullable=True),
        sa.Column("notified_at", sa.DateTime(), nullable=True),
        sa.Column("notify_count", sa.Integer(), nullable=False),
        sa.Column("channels", sa.String(length=200), nullable=True),
        sa.Column("resolved_as_of", sa.Date(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_run_id", sa.String(length=36), nullable=True),
        sa.Column("resolution_notified_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_state")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alert_state_open_key")),
    )
    with op.batch_alter_table("alert_state", schema=None) as batch_op:
        batch_op.create_index("ix_alert_state_alert_key", ["alert_key"], unique=False)
        batch_op.create_index("ix_alert_state_status_kind", ["status", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_state", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_state_status_kind")
        batch_op.drop_index("ix_alert_state_alert_key")
    op.drop_table("alert_state")
