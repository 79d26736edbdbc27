"""Subjects staged by the executors of a Spark job, until its driver registers them.

Revision ID: 0019
Revises: 0018

``staged_subjects``: the executors of ``tiers tokenise-file --engine spark`` write what they
register there, in bulk, each in transactions of its own; the job's driver moves the rows into
``subjects`` and ``pseudonym_index`` in the one transaction of the job's access-log entry, or
drops them if the job fails. So a job registers from its executors, and a failed job leaves
nothing registered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staged_subjects",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("base", sa.LargeBinary(32), primary_key=True),
        sa.Column("domain_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("value", sa.LargeBinary(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("staged_subjects")
