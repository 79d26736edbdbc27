"""Checkpoints name the origin of the log they were signed for.

Revision ID: 0012
Revises: 0011

A deployment now chooses its log's origin line (C2SP tlog-checkpoint) at ``tiers init``, and a
recovered log starts under a new one, so a stored checkpoint keeps the origin it was signed
over. Checkpoints signed before have NULL, read as the origin they were signed with
(``audit.checkpoint.ORIGIN``); their signatures are unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as table:
        table.add_column(sa.Column("origin", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as table:
        table.drop_column("origin")
