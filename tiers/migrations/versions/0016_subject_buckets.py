"""The subject index groups each entry's references by as many bits as its size needs.

Revision ID: 0016
Revises: 0015

A batch of ten values wrote up to ten rows of one reference each, one of 10,000 values about
3,700: every entry's references were grouped by their first 12 bits. An entry is now grouped by
the bits that give rows of about 256 references (tiers._subject_index.bits_for), and a row's
``bucket`` says how many bits: ``(1 << bits) | prefix``. The rows written before were grouped
by 12 bits: their bucket becomes ``4096 + prefix``.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE audit_subjects SET bucket = bucket + 4096 WHERE bucket < 4096")


def downgrade() -> None:
    # Rows grouped by fewer than 12 bits cannot go back: the index is dropped with them.
    op.execute("DELETE FROM audit_subjects WHERE bucket < 4096")
    op.execute("UPDATE audit_subjects SET bucket = bucket - 4096")
