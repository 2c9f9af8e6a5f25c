"""sealed history: a columnar copy of a source's closed months of sales lines

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

See docs/incremental.md ("Sealed history") and ``replenish/store/sealed.py``.
Per source: ``sealed_before`` (the copy holds the source's cached sales lines
ordered before it) and ``seal_id`` (which copy: its files' name; NULL while
none is valid, ``pending:<id>`` while one is being written). Every write of
the demand cache that may touch a line ordered before ``sealed_before``
clears both, so a copy is only ever read while it equals the table. Both
nullable and added in place: a store migrated from 0005 has no copy yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return (
        sa.DateTime()
        .with_variant(mysql.DATETIME(fsp=6), "mariadb")
        .with_variant(mysql.DATETIME(fsp=6), "mysql")
    )


def upgrade() -> None:
    op.add_column("source_watermarks", sa.Column("sealed_before", _ts(), nullable=True))
    op.add_column("source_watermarks", sa.Column("seal_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_watermarks", schema=None) as batch_op:
        batch_op.drop_column("seal_id")
        batch_op.drop_column("sealed_before")
