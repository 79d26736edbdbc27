"""Repository of wrapped keys: rows in, rows out. Wrapping and unwrapping is the caller's job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from tiers.storage.tables import key_generation, keyring_seals, keys

__all__ = [
    "KeyRecord",
    "forget_generation",
    "generation",
    "insert_version",
    "keyrings",
    "load",
    "put_seal",
    "rewrap",
    "seal_of",
    "set_state",
    "wrapped",
]


@dataclass(frozen=True, slots=True, repr=False)
class KeyRecord:
    owner: str
    purpose: str
    version: int
    state: str
    wrapped: bytes | None
    created_at: datetime
    state_changed_at: datetime

    def __repr__(self) -> str:  # the wrapped bytes are not secret, but they are noise
        return f"<KeyRecord {self.purpose} {self.owner} v{self.version} {self.state}>"


# Built once: every request loads keyrings, and building a statement costs as much as running it.
_LOAD = (
    select(keys)
    .where(keys.c.owner == bindparam("owner"), keys.c.purpose == bindparam("purpose"))
    .order_by(keys.c.version)
)


_GENERATION = select(key_generation.c.token).where(key_generation.c.id == 1)


# Where a transaction keeps the generation it read: on the driver connection, cleared when a
# transaction begins (see tiers.storage.database) and when the keys or domains are changed.
_MEMO = "tiers_key_generation"


def wrapped(connection: Connection) -> list[KeyRecord]:
    """Every key version whose material is still there (wrapped), of every keyring."""
    rows = connection.execute(select(keys).where(keys.c.wrapped.is_not(None)).order_by(keys.c.id))
    return [_record(r) for r in rows]


def rewrap(connection: Connection, record: KeyRecord, wrapped: bytes) -> None:
    """Replace the wrapped material of ``record``'s key version (a master-key rotation)."""
    connection.execute(
        update(keys)
        .where(
            keys.c.owner == record.owner,
            keys.c.purpose == record.purpose,
            keys.c.version == record.version,
        )
        .values(wrapped=wrapped)
    )


def _record(r: Any) -> KeyRecord:
    return KeyRecord(
        r.owner, r.purpose, r.version, r.state, r.wrapped, r.created_at, r.state_changed_at
    )


def generation(connection: Connection) -> str | None:
    """The token the database replaces on every change to the keys or the domains (see the
    tables module); None if the row is missing (it comes back with the next change).

    Read once per transaction: a transaction is served under the generation it first read,
    and sees a change made by another only in its next transaction.
    """
    info = connection.info
    if _MEMO not in info:
        info[_MEMO] = connection.execute(_GENERATION).scalar_one_or_none()
    token: str | None = info[_MEMO]
    return token


def forget_generation(connection: Connection) -> None:
    """Read the generation afresh next time: a transaction begins, or changed the keys or the
    domains (its triggers replaced the token)."""
    connection.info.pop(_MEMO, None)


def load(connection: Connection, *, owner: str, purpose: str) -> list[KeyRecord]:
    rows = connection.execute(_LOAD, {"owner": owner, "purpose": purpose}).all()
    return [_record(r) for r in rows]


def insert_version(
    connection: Connection,
    *,
    owner: str,
    purpose: str,
    version: int,
    state: str,
    wrapped: bytes,
    now: datetime,
) -> None:
    connection.execute(
        insert(keys).values(
            owner=owner,
            purpose=purpose,
            version=version,
            state=state,
            wrapped=wrapped,
            created_at=now,
            state_changed_at=now,
        )
    )
    forget_generation(connection)


def set_state(
    connection: Connection,
    *,
    owner: str,
    purpose: str,
    version: int,
    state: str,
    now: datetime,
    erase: bool = False,
) -> None:
    """Change a version's state; ``erase`` overwrites its wrapped material with NULL for good."""
    values: dict[str, object] = {"state": state, "state_changed_at": now}
    if erase:
        values["wrapped"] = None
    connection.execute(
        update(keys)
        .where(keys.c.owner == owner, keys.c.purpose == purpose, keys.c.version == version)
        .values(**values)
    )
    forget_generation(connection)


def keyrings(connection: Connection) -> list[tuple[str, str]]:
    """Every (owner, purpose) that has key versions."""
    rows = connection.execute(select(keys.c.owner, keys.c.purpose).distinct())
    return sorted((row.owner, row.purpose) for row in rows)


def seal_of(connection: Connection, *, owner: str, purpose: str) -> str | None:
    return connection.execute(
        select(keyring_seals.c.seal).where(
            keyring_seals.c.owner == owner, keyring_seals.c.purpose == purpose
        )
    ).scalar_one_or_none()


def put_seal(connection: Connection, *, owner: str, purpose: str, seal: str) -> None:
    updated = connection.execute(
        update(keyring_seals)
        .where(keyring_seals.c.owner == owner, keyring_seals.c.purpose == purpose)
        .values(seal=seal)
    )
    if not updated.rowcount:
        connection.execute(insert(keyring_seals).values(owner=owner, purpose=purpose, seal=seal))
