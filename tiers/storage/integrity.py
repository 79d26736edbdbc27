"""What the schema no longer makes the database check (migration 0010 dropped the foreign keys
of the index entries and cards, for the speed of registering loads), checked on demand: the
test suite runs it after every test, and ``tiers check`` in production."""

from __future__ import annotations

from sqlalchemy import Connection, Table, and_, exists, func, select

from tiers.storage.tables import (
    cards,
    domains,
    hub_keys,
    keys,
    pseudonym_index,
    subjects,
    withdrawn,
)

__all__ = ["faults"]

_REFERENCES: tuple[tuple[Table, str, Table, str], ...] = (
    (pseudonym_index, "subject", subjects, "base"),
    (pseudonym_index, "domain_id", domains, "id"),
    (cards, "base", subjects, "base"),
    (cards, "partner_id", domains, "id"),
)


def faults(connection: Connection) -> dict[str, int]:
    """Each fault, counted (there must be none): index entries and cards naming a subject or a
    domain the database does not hold, cards of one partner with the same subject, and cards
    left without a key in the hub's active version (unless withdrawn: the look-up of known
    values relies on it, see tiers.tokenisation)."""
    found = {}
    for table, column, parent, key in _REFERENCES:
        dangling = (
            select(func.count())
            .select_from(table)
            .where(~exists().where(parent.c[key] == table.c[column]))
        )
        found[f"{table.name}.{column} dangling"] = connection.execute(dangling).scalar_one()
    hub = domains.alias("hub")
    active = and_(
        keys.c.owner == hub.c.name, keys.c.purpose == "pseudonym", keys.c.state == "active"
    )
    unkeyed = (
        select(func.count())
        .select_from(cards.join(hub, hub.c.role == "hub").join(keys, active))
        .where(
            ~exists().where(withdrawn.c.ref == cards.c.ref),
            ~exists().where(hub_keys.c.ref == cards.c.ref, hub_keys.c.version == keys.c.version),
        )
    )
    found["cards without a hub key"] = connection.execute(unkeyed).scalar_one()
    twice = (
        select(cards.c.partner_id, cards.c.base)
        .group_by(cards.c.partner_id, cards.c.base)
        .having(func.count() > 1)
        .subquery()
    )
    found["cards twice"] = connection.execute(select(func.count()).select_from(twice)).scalar_one()
    return found
