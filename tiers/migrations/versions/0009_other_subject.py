"""The access log names the other customer of an entry in a searchable column.

Revision ID: 0009
Revises: 0008

An association is recorded under the card presented at the desk, with the other card in
``detail.other_subject``. A subject look-up searched the ``subject`` column only, so once the
cards were unlinked, the other card's holder no longer found the association among the entries
about them. The new column is filled from the entries already written; the entries, and so the
hash chain, are unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.audit_log import fill_other_subjects

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INDEX = "ix_audit_entries_other_subject"


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as table:
        table.add_column(sa.Column("other_subject", sa.String(64), nullable=True))
    op.create_index(_INDEX, "audit_entries", ["other_subject"])
    fill_other_subjects(op.get_bind())


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="audit_entries")
    with op.batch_alter_table("audit_entries") as table:
        table.drop_column("other_subject")
