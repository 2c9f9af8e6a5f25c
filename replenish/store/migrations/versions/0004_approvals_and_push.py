"""approval decisions and ERP push records of draft purchase orders

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

See docs/publishing.md: who decided what on a draft and when (the latest on
the draft, every decision in ``approval_decisions``), drafts superseded by a
later plan, what the push to the ERP did, each line's planned quantity and
its explanation as figures, and the KPIs of a run (docs/kpis.md). Every new
column is nullable: drafts and runs written before read back as "not
decided, not pushed, no figures".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("draft_purchase_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decided_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("decision_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("superseded_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("erp_target", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("erp_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("erp_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("pushed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("push_action", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("push_message", sa.Text(), nullable=True))

    with op.batch_alter_table("draft_purchase_order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("planned_qty", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kpis", sa.JSON(), nullable=True))

    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("po_key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("total_value", sa.Float(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["po_key"],
            ["draft_purchase_orders.po_key"],
            name=op.f("fk_approval_decisions_po_key_draft_purchase_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_decisions")),
    )
    with op.batch_alter_table("approval_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_approval_decisions_po_key", ["po_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("approval_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_approval_decisions_po_key")
    op.drop_table("approval_decisions")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("kpis")

    with op.batch_alter_table("draft_purchase_order_lines", schema=None) as batch_op:
        batch_op.drop_column("details")
        batch_op.drop_column("planned_qty")

    with op.batch_alter_table("draft_purchase_orders", schema=None) as batch_op:
        for name in (
            "push_message",
            "push_action",
            "pushed_at",
            "erp_name",
            "erp_id",
            "erp_target",
            "superseded_at",
            "superseded_by",
            "decision_note",
            "decided_at",
            "decided_by",
        ):
            batch_op.drop_column(name)
