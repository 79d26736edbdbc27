"""Subject look-ups cover bulk operations: an index of who each entry was about.

Revision ID: 0015
Revises: 0014

An entry names one customer at most (``subject``), so a look-up missed the files, batches,
exchanges and campaigns that included a customer. ``audit_subjects`` holds, for each identifier
an operation touched, the first 64 bits of the customer's audit reference, grouped by bucket
into one array per entry (tiers._subject_index). Entries written before it are not indexed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_subjects",
        sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("refs", sa.LargeBinary(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("audit_subjects")
