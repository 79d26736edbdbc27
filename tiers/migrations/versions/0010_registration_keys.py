"""The pseudonym index and the cards lose their foreign keys, and the cards their second key.

Revision ID: 0010
Revises: 0009

With those keys the database checked every index entry and card it inserted against the
row it names. On SQLite the subject's look-up was the cost: a registering load inserts its
rows sorted by each table's own key, so those look-ups came in random order over a table that,
for a large file, outgrows every cache, and took half the time of inserting the index entries.
On PostgreSQL each check is a trigger run per row, the domain's as well as the subject's.
Registering loads ran 24,500 -> 32,600 rows a second on SQLite, and on PostgreSQL 12,200 ->
18,000 without the subjects' keys, then 17,500 -> 23,400 without the domains' (300,000 rows,
in process, one run after the other).

Nothing is lost that the code relied on: subjects and domains are never deleted; every writer
of an index entry or a card registers its subject first, in the same transaction
(:func:`tiers.storage.subjects.register`), and takes the domain's id from its row. The test
suite checks after every test that each entry and card names a subject and a domain that exist.
The domains' keys of the tables written once per operation (customers, attachments,
deliveries) are kept.

The cards' unique key (partner, subject) goes too: a card's reference is a keyed hash of the
same pair under the base key, which never changes, and is unique itself. Its index took each
card in random order: 22,700 -> 26,000 rows a second on PostgreSQL, 33,600 -> 34,800 on SQLite.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# table -> (constraint, column, referred table, referred column)
_KEYS = {
    "pseudonym_index": (
        ("fk_pseudonym_index_domain_id_domains", "domain_id", "domains", "id"),
        ("fk_pseudonym_index_subject_subjects", "subject", "subjects", "base"),
    ),
    "cards": (
        ("fk_cards_partner_id_domains", "partner_id", "domains", "id"),
        ("fk_cards_base_subjects", "base", "subjects", "base"),
    ),
}


_CARD_KEY = "uq_cards_partner_id_base"


def upgrade() -> None:
    for table, keys in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name, _column, _referred, _key in keys:
                batch.drop_constraint(name, type_="foreignkey")
            if table == "cards":
                batch.drop_constraint(_CARD_KEY, type_="unique")


def downgrade() -> None:
    for table, keys in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name, column, referred, key in keys:
                batch.create_foreign_key(name, referred, [column], [key])
            if table == "cards":
                batch.create_unique_constraint(_CARD_KEY, ["partner_id", "base"])
