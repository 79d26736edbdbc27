"""The key generation also changes with the domains: a process may then keep domain records.

Revision ID: 0007
Revises: 0006

Every request looks up its domain (and a partner's card, the hub domain), and those reads were
a quarter of a single-value call. A process now keeps the records it read under the same token
as its keyrings, so the triggers that replace the token on any change to ``keys`` are added to
``domains``: a domain added, changed or removed by any code, or by hand, is seen by the next
transaction of every process.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")
_SQLITE_BUMP = (
    "BEGIN INSERT OR REPLACE INTO key_generation (id, token) "
    "VALUES (1, lower(hex(randomblob(16)))); END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(  # the function of migration 0006
            "CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON domains FOR EACH STATEMENT EXECUTE FUNCTION tiers_key_generation_bump()"
        )
        return
    for event in _SQLITE_EVENTS:
        op.execute(
            f"CREATE TRIGGER domains_{event.lower()}_bumps_generation AFTER {event} ON domains "
            + _SQLITE_BUMP
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER domains_changed ON domains")
    else:
        for event in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER domains_{event.lower()}_bumps_generation")
