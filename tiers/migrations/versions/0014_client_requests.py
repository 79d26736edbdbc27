"""Four eyes on who may hold data keys: requests for clients, approved by a second admin.

Revision ID: 0014
Revises: 0013

An admin client of the API could create a partner client and a hub client for itself, and so
hold both sides of a link. Over the API, creating or re-keying a client is now a request that
another admin approves (tiers.approvals). A request is a row of power until it is decided: it
carries a seal like the clients' own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(32), nullable=True),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("seal", sa.String(80), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("client_requests")
