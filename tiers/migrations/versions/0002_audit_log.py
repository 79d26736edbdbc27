"""The access log: entries, signed checkpoints and the log head.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_time", "audit_entries", ["time"])
    op.create_index("ix_audit_entries_actor", "audit_entries", ["actor"])
    op.create_index("ix_audit_entries_subject", "audit_entries", ["subject"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "audit_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_seq", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("last_checkpoint", sa.BigInteger(), nullable=False),
        sa.Column("purged", sa.BigInteger(), nullable=False),
        sa.Column("purge_frontier", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_state"),
    )
    state = sa.table(
        "audit_state",
        sa.column("id", sa.Integer()),
        sa.column("next_seq", sa.BigInteger()),
        sa.column("head", sa.String()),
        sa.column("frontier", sa.Text()),
        sa.column("last_checkpoint", sa.BigInteger()),
        sa.column("purged", sa.BigInteger()),
    )
    op.bulk_insert(
        state,
        [
            {
                "id": 1,
                "next_seq": 0,
                "head": "0" * 64,
                "frontier": "[]",
                "last_checkpoint": 0,
                "purged": 0,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("audit_state")
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_entries_subject", table_name="audit_entries")
    op.drop_index("ix_audit_entries_actor", table_name="audit_entries")
    op.drop_index("ix_audit_entries_time", table_name="audit_entries")
    op.drop_table("audit_entries")
