"""Sessions of the console: an auditor or an admin signs in with an API key, once.

Revision ID: 0017
Revises: 0016

The browser keeps a random token in a cookie; the table keeps its SHA-256, the client, the key
it was opened with (a rotated or revoked key ends it), the purpose stated at sign-in and when
it was last used (an idle session ends), and a seal under the master key like the clients'
rows, so that a database writer cannot forge a session. Kept in the database so that every
worker, and every node, knows it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("credential_version", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("seal", sa.String(80), nullable=False),
    )
    op.create_index("ix_console_sessions_client_id", "console_sessions", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_client_id", "console_sessions")
    op.drop_table("console_sessions")
