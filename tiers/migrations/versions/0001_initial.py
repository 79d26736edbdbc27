"""Domains, wrapped keys, subjects (base pseudonyms) and the domain-pseudonym index.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_meta"),
    )
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("card_luhn", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_domains"),
        sa.UniqueConstraint("name", name="uq_domains_name"),
    )
    op.create_table(
        "keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("state_changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_keys"),
        sa.UniqueConstraint("owner", "purpose", "version", name="uq_keys_owner_purpose_version"),
    )
    op.create_table(
        "subjects",
        sa.Column("base", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("base", name="pk_subjects"),
    )
    op.create_table(
        "pseudonym_index",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", sa.LargeBinary(20), nullable=False),
        sa.Column("subject", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name="fk_pseudonym_index_domain_id_domains"
        ),
        sa.ForeignKeyConstraint(
            ["subject"], ["subjects.base"], name="fk_pseudonym_index_subject_subjects"
        ),
        sa.PrimaryKeyConstraint("domain_id", "version", "value", name="pk_pseudonym_index"),
    )
    op.create_index(
        "ix_pseudonym_index_subject_domain_id", "pseudonym_index", ["subject", "domain_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_pseudonym_index_subject_domain_id", table_name="pseudonym_index")
    op.drop_table("pseudonym_index")
    op.drop_table("subjects")
    op.drop_table("keys")
    op.drop_table("domains")
    op.drop_table("meta")
