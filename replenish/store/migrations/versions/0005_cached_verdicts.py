"""cached verdicts: the validation gate's row-level verdict of each cached sales line

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

See docs/incremental.md and docs/data-quality.md. ``sales_cache.verdict``:
the checks a cached line failed when the gate validated it (rule ids without
the dataset, space-separated), NULL otherwise. Per source:
``verdicts_through`` and ``verdicts_from`` say which lines the gate has
validated (those stamped ``loaded_at`` up to the first and ordered from the
second on; without a failed check they passed), ``verdict_rules`` the
fingerprint of the checks (other checks: every line is validated again).
All nullable and added in place (no table rebuild): a cache written before
reads back as "not validated yet", and the next run validates it whole.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return (
        sa.DateTime()
        .with_variant(mysql.DATETIME(fsp=6), "mariadb")
        .with_variant(mysql.DATETIME(fsp=6), "mysql")
    )


def upgrade() -> None:
    op.add_column("sales_cache", sa.Column("verdict", sa.String(length=512), nullable=True))
    op.add_column(
        "source_watermarks", sa.Column("verdict_rules", sa.String(length=64), nullable=True)
    )
    op.add_column("source_watermarks", sa.Column("verdicts_through", _ts(), nullable=True))
    op.add_column("source_watermarks", sa.Column("verdicts_from", _ts(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_watermarks", schema=None) as batch_op:
        batch_op.drop_column("verdicts_from")
        batch_op.drop_column("verdicts_through")
        batch_op.drop_column("verdict_rules")
    with op.batch_alter_table("sales_cache", schema=None) as batch_op:
        batch_op.drop_column("verdict")
