"""Inbox deliveries and withdrawn cards and customers.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("acked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["domains.id"], name="fk_deliveries_recipient_id_domains"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_recipient_id", "deliveries", ["recipient_id"])
    op.create_table(
        "withdrawn",
        sa.Column("ref", sa.LargeBinary(32), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ref", name="pk_withdrawn"),
    )


def downgrade() -> None:
    op.drop_table("withdrawn")
    op.drop_index("ix_deliveries_recipient_id", table_name="deliveries")
    op.drop_table("deliveries")
