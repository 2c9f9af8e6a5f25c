"""demand cache: sales lines and returns per source, with a watermark per source

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:09:23.633442

See docs/incremental.md. Timestamps keep their microseconds on MariaDB
(DATETIME(6)); quantities are double precision everywhere.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return (
        sa.DateTime()
        .with_variant(mysql.DATETIME(fsp=6), 'mariadb')
        .with_variant(mysql.DATETIME(fsp=6), 'mysql')
    )


def upgrade() -> None:
    op.create_table('returns_cache',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('returned_at', _ts(), nullable=False),
    sa.Column('location_id', sa.String(length=64), nullable=True),
    sa.Column('qty', sa.Double(), nullable=True),
    sa.Column('restockable', sa.Boolean(), nullable=True),
    sa.Column('loaded_at', _ts(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'order_id', 'sku', 'returned_at', name=op.f('pk_returns_cache'))
    )
    with op.batch_alter_table('returns_cache', schema=None) as batch_op:
        batch_op.create_index('ix_returns_cache_sku', ['sku'], unique=False)
        batch_op.create_index('ix_returns_cache_source_returned_at', ['source', 'returned_at'], unique=False)

    op.create_table('sales_cache',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('line_no', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=True),
    sa.Column('location_id', sa.String(length=64), nullable=True),
    sa.Column('qty', sa.Double(), nullable=True),
    sa.Column('ordered_at', _ts(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('loaded_at', _ts(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'channel', 'order_id', 'line_no', name=op.f('pk_sales_cache'))
    )
    with op.batch_alter_table('sales_cache', schema=None) as batch_op:
        batch_op.create_index('ix_sales_cache_sku', ['sku'], unique=False)
        batch_op.create_index('ix_sales_cache_source_ordered_at', ['source', 'ordered_at'], unique=False)

    op.create_table('source_watermarks',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('watermark', _ts(), nullable=True),
    sa.Column('covered_from', _ts(), nullable=True),
    sa.Column('origin', sa.String(length=512), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('returns', sa.Integer(), nullable=False),
    sa.Column('updated_at', _ts(), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_source_watermarks'))
    )


def downgrade() -> None:
    op.drop_table('source_watermarks')
    with op.batch_alter_table('sales_cache', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_cache_source_ordered_at')
        batch_op.drop_index('ix_sales_cache_sku')

    op.drop_table('sales_cache')
    with op.batch_alter_table('returns_cache', schema=None) as batch_op:
        batch_op.drop_index('ix_returns_cache_source_returned_at')
        batch_op.drop_index('ix_returns_cache_sku')

    op.drop_table('returns_cache')
