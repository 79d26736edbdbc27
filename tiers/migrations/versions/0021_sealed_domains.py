"""Domains are rows of power too: each carries a seal.

Revision ID: 0021
Revises: 0020

A database writer could turn a blind-only domain into one that takes clear identifiers, switch
a domain's card check, or give a partner's domain the hub's role, and the service obeyed.
``domains.seal`` is an HMAC, under the key of the rows of power (tiers.sealing), of the
domain's id, name, role, card check, blind-only flag and the deployment's pseudonym scheme; a
domain whose seal fails is not used. The migration cannot compute seals (it has no master
key): ``tiers init``, which applies it, seals the domains that have none, and logs it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, as in 0020: a batch would rebuild the table on SQLite and drop its
    # triggers (0007).
    op.add_column("domains", sa.Column("seal", sa.String(80), nullable=True))


def downgrade() -> None:
    op.drop_column("domains", "seal")
