"""Repository of cards, alliance customers, attachment history, hub keys and policies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from tiers.storage._dialect import (
    bulk_insert_ignoring_duplicates,
    in_chunks,
    rows_where_in,
    versioned_chunks,
)
from tiers.storage.tables import (
    attachments,
    cards,
    customers,
    domains,
    hub_keys,
    link_lock,
    policies,
)

__all__ = [
    "CardRow",
    "CustomerRow",
    "active_policy",
    "add_attachment",
    "all_customers",
    "all_refs",
    "card_by_ref",
    "card_customers",
    "cards_by_refs",
    "cards_of",
    "cards_of_customers",
    "create_customer",
    "customer",
    "customer_by_base",
    "customers_by_bases",
    "customers_by_ids",
    "delete_customer",
    "delete_hub_keys",
    "enrol",
    "hub_keys_of",
    "hub_ref",
    "hub_refs",
    "hub_value",
    "hub_values",
    "insert_hub_keys",
    "lock",
    "set_card_customer",
    "store_policy",
    "update_customer",
]


@dataclass(frozen=True, slots=True)
class CardRow:
    id: int
    ref: bytes
    partner: str
    base: bytes
    enrolled_at: datetime
    customer_id: int | None
    linked_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: int
    base: bytes
    attached_to: str
    attaching_card: int
    rule: str
    policy_version: str
    attached_at: datetime
    last_transfer_at: datetime | None


def lock(connection: Connection) -> None:
    """Take the link lock until the transaction ends: link changes apply one at a time."""
    connection.execute(
        update(link_lock).where(link_lock.c.id == 1).values(changes=link_lock.c.changes + 1)
    )


_CARD = select(
    cards.c.id,
    cards.c.ref,
    domains.c.name,
    cards.c.base,
    cards.c.enrolled_at,
    cards.c.customer_id,
    cards.c.linked_at,
).join(domains, domains.c.id == cards.c.partner_id)


def _card(row: Any) -> CardRow:
    return CardRow(*tuple(row))


def enrol(
    connection: Connection, *, partner_id: int, cards_: Sequence[tuple[bytes, bytes]], now: datetime
) -> None:
    """Insert a partner's cards as ``(ref, base)``; known ones stay as they are (their first
    enrolment date is kept)."""
    bulk_insert_ignoring_duplicates(
        connection, cards, ["ref", "base"], cards_, {"partner_id": partner_id, "enrolled_at": now}
    )


def insert_hub_keys(connection: Connection, rows: Sequence[dict[str, object]]) -> None:
    """Insert hub keys (``version``, ``value``, ``kind``, ``ref``); known ones are kept."""
    columns = ["version", "value", "kind", "ref"]
    bulk_insert_ignoring_duplicates(
        connection,
        hub_keys,
        columns,
        [tuple(row[c] for c in columns) for row in rows],  # type: ignore[misc]
    )


def hub_keys_of_version(connection: Connection, *, version: int) -> list[Any]:
    """Every hub key of ``version``: ``(value, kind, ref)``, in the order of their values."""
    return list(
        connection.execute(
            select(hub_keys.c.value, hub_keys.c.kind, hub_keys.c.ref)
            .where(hub_keys.c.version == version)
            .order_by(hub_keys.c.value)
        )
    )


def delete_hub_version(connection: Connection, *, version: int) -> int:
    """Delete every hub key of ``version``; how many there were."""
    result = connection.execute(delete(hub_keys).where(hub_keys.c.version == version))
    return int(result.rowcount or 0)


def card_by_ref(connection: Connection, *, ref: bytes) -> CardRow | None:
    row = connection.execute(_CARD.where(cards.c.ref == ref)).one_or_none()
    return None if row is None else _card(row)


def cards_by_refs(connection: Connection, *, refs: Sequence[bytes]) -> dict[bytes, CardRow]:
    """The cards among ``refs``, by ref (one query per ``IN_CHUNK`` refs)."""
    found: dict[bytes, CardRow] = {}
    for chunk in in_chunks(refs):
        for row in connection.execute(_CARD.where(cards.c.ref.in_(chunk))):
            found[bytes(row.ref)] = _card(row)
    return found


def card_customers(connection: Connection, *, refs: Sequence[bytes]) -> dict[bytes, int | None]:
    """The enrolled cards among ``refs``, by ref: each one's customer, or ``None``. Written
    for the driver (:func:`~tiers.storage._dialect.rows_where_in`): on an exchange's hot path."""
    rows = rows_where_in(connection, "SELECT ref, customer_id FROM cards WHERE ref {in}", refs)
    return {bytes(ref): customer for ref, customer in rows}


def cards_of(connection: Connection, *, customer_id: int) -> list[CardRow]:
    rows = connection.execute(_CARD.where(cards.c.customer_id == customer_id).order_by(cards.c.id))
    return [_card(row) for row in rows]


_CUSTOMER = select(
    customers.c.id,
    customers.c.base,
    domains.c.name,
    customers.c.attaching_card,
    customers.c.rule,
    customers.c.policy_version,
    customers.c.attached_at,
    customers.c.last_transfer_at,
).join(domains, domains.c.id == customers.c.attached_to)


def customer(connection: Connection, *, customer_id: int) -> CustomerRow | None:
    row = connection.execute(_CUSTOMER.where(customers.c.id == customer_id)).one_or_none()
    return None if row is None else CustomerRow(*row)


def customers_by_ids(connection: Connection, *, ids: Sequence[int]) -> dict[int, CustomerRow]:
    """:func:`customer` for many: each customer found, by id."""
    found: dict[int, CustomerRow] = {}
    for chunk in in_chunks(ids):
        for row in connection.execute(_CUSTOMER.where(customers.c.id.in_(chunk))):
            found[row.id] = CustomerRow(*row)
    return found


def cards_of_customers(connection: Connection, *, ids: Sequence[int]) -> dict[int, list[CardRow]]:
    """:func:`cards_of` for many customers: each one's cards, in enrolment order."""
    found: dict[int, list[CardRow]] = {}
    for chunk in in_chunks(ids):
        rows = connection.execute(_CARD.where(cards.c.customer_id.in_(chunk)).order_by(cards.c.id))
        for row in rows:
            card = _card(row)
            assert card.customer_id is not None
            found.setdefault(card.customer_id, []).append(card)
    return found


def create_customer(
    connection: Connection,
    *,
    base: bytes,
    attached_to: int,
    attaching_card: int,
    rule: str,
    policy_version: str,
    now: datetime,
) -> int:
    result = connection.execute(
        insert(customers).values(
            base=base,
            attached_to=attached_to,
            attaching_card=attaching_card,
            rule=rule,
            policy_version=policy_version,
            attached_at=now,
            created_at=now,
        )
    )
    (new_id,) = result.inserted_primary_key or (None,)
    assert new_id is not None
    return int(new_id)


def update_customer(connection: Connection, *, customer_id: int, **values: object) -> None:
    connection.execute(update(customers).where(customers.c.id == customer_id).values(**values))


def delete_customer(connection: Connection, *, customer_id: int, base: bytes) -> None:
    connection.execute(
        update(cards)
        .where(cards.c.customer_id == customer_id)
        .values(customer_id=None, linked_at=None)
    )
    connection.execute(delete(hub_keys).where(hub_keys.c.ref == base))
    connection.execute(delete(customers).where(customers.c.id == customer_id))


def set_card_customer(
    connection: Connection,
    *,
    card_ids: Sequence[int],
    customer_id: int | None,
    now: datetime | None,
) -> None:
    connection.execute(
        update(cards)
        .where(cards.c.id.in_(list(card_ids)))
        .values(customer_id=customer_id, linked_at=now)
    )


def add_attachment(
    connection: Connection,
    *,
    customer_id: int,
    partner_id: int | None,
    card_id: int | None,
    rule: str,
    policy_version: str,
    now: datetime,
    actor: str,
) -> None:
    connection.execute(
        insert(attachments).values(
            customer_id=customer_id,
            partner_id=partner_id,
            card_id=card_id,
            rule=rule,
            policy_version=policy_version,
            decided_at=now,
            actor=actor[:128],
        )
    )


def hub_ref(connection: Connection, *, version: int, value: bytes) -> tuple[str, bytes] | None:
    row = connection.execute(
        select(hub_keys.c.kind, hub_keys.c.ref).where(
            hub_keys.c.version == version, hub_keys.c.value == value
        )
    ).one_or_none()
    return None if row is None else (row.kind, row.ref)


def hub_refs(
    connection: Connection, *, wanted: Sequence[tuple[int, bytes]]
) -> dict[tuple[int, bytes], tuple[str, bytes]]:
    """:func:`hub_ref` for many ``(version, value)``: the ``(kind, ref)`` of each one found."""
    found: dict[tuple[int, bytes], tuple[str, bytes]] = {}
    for version, chunk in versioned_chunks(wanted):
        query = select(hub_keys.c.value, hub_keys.c.kind, hub_keys.c.ref).where(
            hub_keys.c.version == version, hub_keys.c.value.in_(chunk)
        )
        found.update(
            ((version, bytes(row.value)), (row.kind, bytes(row.ref)))
            for row in connection.execute(query)
        )
    return found


def hub_value(connection: Connection, *, ref: bytes, version: int) -> bytes | None:
    """The hub key value of one ref in ``version`` (selected by ref alone: see hub_values)."""
    rows = connection.execute(
        select(hub_keys.c.version, hub_keys.c.value).where(hub_keys.c.ref == ref)
    )
    return next((bytes(row.value) for row in rows if row.version == version), None)


def hub_values(
    connection: Connection, *, refs: Sequence[bytes], version: int
) -> dict[bytes, bytes]:
    """The hub key value of each of ``refs`` (cards' refs or customers' bases) in ``version``.

    Selected by ref alone, the version filtered here: with the version in the query, PostgreSQL
    could walk the primary key's whole version instead of the ref index (it did, in a large
    exchange whose transaction had grown the table past its statistics: 500 rows/s). Written
    for the driver (:func:`~tiers.storage._dialect.rows_where_in`), as it is on an exchange's
    hot path."""
    unique = list(dict.fromkeys(refs))
    query = "SELECT ref, version, value FROM hub_keys WHERE ref {in}"
    rows = rows_where_in(connection, query, unique)
    return {bytes(ref): bytes(value) for ref, in_version, value in rows if in_version == version}


def hub_keys_of(connection: Connection, *, refs: Sequence[bytes]) -> list[tuple[int, bytes]]:
    rows = connection.execute(
        select(hub_keys.c.version, hub_keys.c.value)
        .where(hub_keys.c.ref.in_(list(refs)))
        .order_by(hub_keys.c.version, hub_keys.c.value)
    )
    return [(row.version, row.value) for row in rows]


def delete_hub_keys(connection: Connection, *, refs: Sequence[bytes]) -> None:
    connection.execute(delete(hub_keys).where(hub_keys.c.ref.in_(list(refs))))


def all_refs(connection: Connection) -> list[tuple[bytes, str]]:
    """``(ref, kind)`` of every card and every customer."""
    found = [(row.ref, "card") for row in connection.execute(select(cards.c.ref))]
    found += [(row.base, "customer") for row in connection.execute(select(customers.c.base))]
    return found


def customer_by_base(connection: Connection, *, base: bytes) -> int | None:
    return connection.execute(
        select(customers.c.id).where(customers.c.base == base)
    ).scalar_one_or_none()


def customers_by_bases(connection: Connection, *, bases: Sequence[bytes]) -> dict[bytes, int]:
    """:func:`customer_by_base` for many: the id of each customer found, by base."""
    found: dict[bytes, int] = {}
    for chunk in in_chunks(bases):
        query = select(customers.c.base, customers.c.id).where(customers.c.base.in_(chunk))
        found.update((bytes(row.base), row.id) for row in connection.execute(query))
    return found


def all_customers(connection: Connection) -> list[int]:
    return list(connection.execute(select(customers.c.id).order_by(customers.c.id)).scalars())


def active_policy(connection: Connection) -> tuple[str, bytes] | None:
    row = connection.execute(
        select(policies.c.version, policies.c.content).where(policies.c.active.is_(True))
    ).one_or_none()
    return None if row is None else (row.version, row.content.encode("utf-8"))


def store_policy(
    connection: Connection, *, version: str, name: str, content: str, now: datetime
) -> None:
    """Make ``version`` the one in force (stored once; older versions stay for the record)."""
    connection.execute(update(policies).values(active=False))
    existing = connection.execute(
        select(policies.c.version).where(policies.c.version == version)
    ).scalar_one_or_none()
    if existing is None:
        connection.execute(
            insert(policies).values(
                version=version, name=name, content=content, applied_at=now, active=True
            )
        )
    else:
        connection.execute(
            update(policies)
            .where(policies.c.version == version)
            .values(active=True, applied_at=now)
        )
