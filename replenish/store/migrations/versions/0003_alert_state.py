"""alert state: severity, open/resolved lifecycle across runs, digests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Filled in by the alerts work (docs/alerts.md). Empty until then.
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
