"""State that every node of a deployment shares: stored files, parts in transit, counters.

Revision ID: 0018
Revises: 0017

On PostgreSQL, several ``tiers serve`` nodes on several hosts share nothing but the database:

- ``stored_files``: the outputs of file jobs and the inbox's deliveries, in chunks, so that a
  node that did not write a file can serve it (on SQLite they stay in the home's folders);
- ``job_nodes`` and ``job_parts``: which node runs a file job, and the parts of its upload that
  reached another node, encrypted under a key of the job's own (wrapped under the master key)
  until the job's node has read them; then only their digest is kept, until the job ends;
- ``limit_buckets``: the request rate and identifier budgets of each client, per deployment
  rather than per process (the key is a digest: no address is stored).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("name", sa.String(96), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "job_nodes",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("part_key", sa.Text, nullable=False),
        sa.Column("complete_parts", sa.Integer, nullable=True),
    )
    op.create_table(
        "job_parts",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "limit_buckets",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("first", sa.Float, nullable=False),
        sa.Column("second", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("limit_buckets", "job_parts", "job_nodes", "stored_files"):
        op.drop_table(table)
