"""Domains in blind mode only.

Revision ID: 0020
Revises: 0019

``domains.blind_only``: a partner's domain created with ``tiers domain add --blind-only`` takes
its identifiers blinded only (``POST /v1/blind/evaluate``); the service refuses them in clear
(``blind_only``), wherever a clear identifier would enter: pseudonyms, files, card enrolment
and look-ups, exchanges, an auditor's subject look-up. Existing domains take clear identifiers,
as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch: on SQLite a batch would rebuild the table, dropping the
    # triggers that tell the keyring caches a domain changed (0007) and tripping the foreign
    # keys that name it.
    op.add_column(
        "domains",
        sa.Column("blind_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("domains", "blind_only")
