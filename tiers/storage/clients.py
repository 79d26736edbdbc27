"""Repository of API clients."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from tiers.storage.tables import clients

__all__ = [
    "ClientRecord",
    "add",
    "by_id",
    "by_name",
    "by_prefix",
    "list_all",
    "revoke",
    "set_key",
    "set_seal",
]


@dataclass(frozen=True, slots=True, repr=False)
class ClientRecord:
    id: int
    name: str
    role: str
    domain: str | None
    key_prefix: str
    key_hash: str
    credential_version: int
    active: bool
    created_at: datetime
    revoked_at: datetime | None
    seal: str | None = None

    def __repr__(self) -> str:  # the hash is not the key, but it is an offline-attack target
        return f"<ClientRecord {self.name} {self.role} {'active' if self.active else 'revoked'}>"


def _record(row: Row[Any]) -> ClientRecord:
    return ClientRecord(**row._asdict())


def add(
    connection: Connection,
    *,
    name: str,
    role: str,
    domain: str | None,
    key_prefix: str,
    key_hash: str,
    now: datetime,
) -> ClientRecord:
    result = connection.execute(
        insert(clients).values(
            name=name,
            role=role,
            domain=domain,
            key_prefix=key_prefix,
            key_hash=key_hash,
            credential_version=1,
            active=True,
            created_at=now,
        )
    )
    (new_id,) = result.inserted_primary_key or (None,)
    assert new_id is not None
    return ClientRecord(int(new_id), name, role, domain, key_prefix, key_hash, 1, True, now, None)


# Built once: authentication reads a client on every request.
_BY = {
    column: select(clients).where(clients.c[column] == bindparam("value"))
    for column in ("id", "name", "key_prefix")
}


def _one(connection: Connection, column: str, value: object) -> ClientRecord | None:
    row = connection.execute(_BY[column], {"value": value}).one_or_none()
    return None if row is None else _record(row)


def by_name(connection: Connection, *, name: str) -> ClientRecord | None:
    return _one(connection, "name", name)


def by_prefix(connection: Connection, *, prefix: str) -> ClientRecord | None:
    return _one(connection, "key_prefix", prefix)


def by_id(connection: Connection, *, client_id: int) -> ClientRecord | None:
    return _one(connection, "id", client_id)


_BY_IDS = select(clients).where(clients.c.id.in_(bindparam("ids", expanding=True)))


def by_ids(connection: Connection, client_ids: Iterable[int]) -> dict[int, ClientRecord]:
    """The clients of ``client_ids`` that exist, by id (one query)."""
    wanted = list(dict.fromkeys(client_ids))
    if not wanted:
        return {}
    return {row.id: _record(row) for row in connection.execute(_BY_IDS, {"ids": wanted})}


def list_all(connection: Connection) -> list[ClientRecord]:
    return [_record(r) for r in connection.execute(select(clients).order_by(clients.c.name))]


def set_key(connection: Connection, *, client_id: int, key_prefix: str, key_hash: str) -> None:
    connection.execute(
        update(clients)
        .where(clients.c.id == client_id)
        .values(
            key_prefix=key_prefix,
            key_hash=key_hash,
            credential_version=clients.c.credential_version + 1,
        )
    )


def revoke(connection: Connection, *, client_id: int, now: datetime) -> None:
    connection.execute(
        update(clients)
        .where(clients.c.id == client_id)
        .values(active=False, revoked_at=now, credential_version=clients.c.credential_version + 1)
    )


def set_seal(connection: Connection, *, client_id: int, seal: str) -> None:
    connection.execute(update(clients).where(clients.c.id == client_id).values(seal=seal))
