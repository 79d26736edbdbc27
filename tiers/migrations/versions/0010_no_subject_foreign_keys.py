"""The pseudonym index and the cards no longer hold foreign keys to the subjects.

Revision ID: 0010
Revises: 0009

With those keys the database looked up the subject of every index entry and card it inserted.
A registering load inserts its rows sorted by each table's own key, so those look-ups came in
random order over a table that, for a large file, outgrows every cache: they took half the
time of inserting the index entries. Registering loads ran 23,000 -> 31,000 rows a second on
SQLite and 11,000 -> 17,000 on PostgreSQL without them (300,000 rows, in process).

Nothing is lost that the code relied on: subjects are never deleted, and every writer of an
index entry or a card registers its subject first, in the same transaction
(:func:`tiers.storage.subjects.register`; :func:`tiers.storage.sorted_inserts` inserts the
tables in the order they were first used). Tests check after each way of writing them that
every entry and card has its subject.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (table, constraint, column)
_KEYS = (
    ("pseudonym_index", "fk_pseudonym_index_subject_subjects", "subject"),
    ("cards", "fk_cards_base_subjects", "base"),
)


def upgrade() -> None:
    for table, name, _column in _KEYS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, name, column in _KEYS:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(name, "subjects", [column], ["base"])
