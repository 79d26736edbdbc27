"""Rows of power carry seals: clients and keyrings are authenticated under the master key.

Revision ID: 0013
Revises: 0012

A database writer could give a client another role or domain, revive a revoked one, or swap a
domain's key states, and the service obeyed. Clients get a ``seal`` column and each keyring a
row in ``keyring_seals``: an HMAC of what grants power, under a key derived from the master key
(tiers.sealing). The migration cannot compute seals (it has no master key): ``tiers init``,
which applies it, seals the rows that have none, and logs it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as table:
        table.add_column(sa.Column("seal", sa.String(80), nullable=True))
    op.create_table(
        "keyring_seals",
        sa.Column("owner", sa.String(32), primary_key=True),
        sa.Column("purpose", sa.String(16), primary_key=True),
        sa.Column("seal", sa.String(80), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("keyring_seals")
    with op.batch_alter_table("clients") as table:
        table.drop_column("seal")
