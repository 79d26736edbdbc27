"""The key generation: a token that triggers replace on every change to the keys table.

Revision ID: 0006
Revises: 0005

A service process keeps the keyrings it unwrapped for as long as the token it read them under
is the current one. The token is random (not a counter), so that the token of a change that
was rolled back is never seen again, and it is replaced by the database itself, so that no
change to a key, by whatever code or by hand, can leave a process with a stale keyring.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")
_SQLITE_BUMP = (
    "BEGIN INSERT OR REPLACE INTO key_generation (id, token) "
    "VALUES (1, lower(hex(randomblob(16)))); END"
)

_POSTGRESQL = """
CREATE FUNCTION tiers_key_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_generation (id, token) VALUES (1, gen_random_uuid()::text)
    ON CONFLICT (id) DO UPDATE SET token = excluded.token;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "key_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_key_generation"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("INSERT INTO key_generation (id, token) VALUES (1, gen_random_uuid()::text)")
        op.execute(_POSTGRESQL)
        op.execute(
            "CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON keys "
            "FOR EACH STATEMENT EXECUTE FUNCTION tiers_key_generation_bump()"
        )
        return
    op.execute("INSERT INTO key_generation (id, token) VALUES (1, lower(hex(randomblob(16))))")
    for event in _SQLITE_EVENTS:  # SQLite's triggers are per row and per event
        op.execute(
            f"CREATE TRIGGER keys_{event.lower()}_bumps_generation AFTER {event} ON keys "
            + _SQLITE_BUMP
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER keys_changed ON keys")
        op.execute("DROP FUNCTION tiers_key_generation_bump()")
    else:
        for event in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER keys_{event.lower()}_bumps_generation")
    op.drop_table("key_generation")
