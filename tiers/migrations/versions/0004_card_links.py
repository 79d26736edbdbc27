"""Card links: cards, alliance customers, attachment history, hub keys, policy versions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tiers.storage.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("base", sa.LargeBinary(32), nullable=False),
        sa.Column("attached_to", sa.Integer(), nullable=False),
        sa.Column("attaching_card", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(80), nullable=False),
        sa.Column("attached_at", UTCDateTime(), nullable=False),
        sa.Column("last_transfer_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attached_to"], ["domains.id"], name="fk_customers_attached_to_domains"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("base", name="uq_customers_base"),
    )
    op.create_table(
        "cards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.LargeBinary(32), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("base", sa.LargeBinary(32), nullable=False),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("linked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["domains.id"], name="fk_cards_partner_id_domains"),
        sa.ForeignKeyConstraint(["base"], ["subjects.base"], name="fk_cards_base_subjects"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_cards_customer_id_customers"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cards"),
        sa.UniqueConstraint("ref", name="uq_cards_ref"),
        sa.UniqueConstraint("partner_id", "base", name="uq_cards_partner_id_base"),
    )
    op.create_index("ix_cards_customer_id", "cards", ["customer_id"])
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("card_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(80), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["domains.id"], name="fk_attachments_partner_id_domains"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
    )
    op.create_index("ix_attachments_customer_id", "attachments", ["customer_id"])
    op.create_table(
        "hub_keys",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.LargeBinary(20), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ref", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("version", "value", name="pk_hub_keys"),
    )
    op.create_index("ix_hub_keys_ref", "hub_keys", ["ref"])
    op.create_table(
        "policies",
        sa.Column("version", sa.String(80), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_policies"),
    )
    lock = op.create_table(
        "link_lock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_link_lock"),
    )
    op.bulk_insert(lock, [{"id": 1, "changes": 0}])


def downgrade() -> None:
    op.drop_table("link_lock")
    op.drop_table("policies")
    op.drop_index("ix_hub_keys_ref", table_name="hub_keys")
    op.drop_table("hub_keys")
    op.drop_index("ix_attachments_customer_id", table_name="attachments")
    op.drop_table("attachments")
    op.drop_index("ix_cards_customer_id", table_name="cards")
    op.drop_table("cards")
    op.drop_table("customers")
