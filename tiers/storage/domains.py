"""Repository of pseudonymisation domains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from tiers.storage import keystore
from tiers.storage.tables import domains

__all__ = ["DomainRecord", "add", "first_with_role", "get", "list_all", "set_seal"]


@dataclass(frozen=True, slots=True)
class DomainRecord:
    id: int
    name: str
    role: str
    card_luhn: bool
    created_at: datetime
    # Blind mode only: its identifiers are refused in clear (tiers.deployment.normalisation).
    blind_only: bool = False
    # Its seal as a row of power (tiers.sealing); None only before `tiers init` sealed it.
    seal: str | None = None


def _record(row: Any) -> DomainRecord:
    return DomainRecord(
        row.id, row.name, row.role, row.card_luhn, row.created_at, row.blind_only, row.seal
    )


def add(
    connection: Connection,
    *,
    name: str,
    role: str,
    card_luhn: bool,
    now: datetime,
    blind_only: bool = False,
) -> DomainRecord:
    result = connection.execute(
        insert(domains).values(
            name=name, role=role, card_luhn=card_luhn, created_at=now, blind_only=blind_only
        )
    )
    keystore.forget_generation(connection)
    (new_id,) = result.inserted_primary_key or (None,)
    assert new_id is not None
    return DomainRecord(int(new_id), name, role, card_luhn, now, blind_only)


# Built once: every request looks its domain up, and building a statement costs as much as
# running it.
_GET = select(domains).where(domains.c.name == bindparam("name"))


def get(connection: Connection, *, name: str) -> DomainRecord | None:
    row = connection.execute(_GET, {"name": name}).one_or_none()
    return None if row is None else _record(row)


_WITH_ROLE = select(domains).where(domains.c.role == bindparam("role")).order_by(domains.c.name)


def first_with_role(connection: Connection, *, role: str) -> DomainRecord | None:
    """The first domain (by name) with ``role``: the hub, say, of which there is one."""
    row = connection.execute(_WITH_ROLE, {"role": role}).first()
    return None if row is None else _record(row)


def set_seal(connection: Connection, *, domain_id: int, seal: str) -> None:
    connection.execute(update(domains).where(domains.c.id == domain_id).values(seal=seal))


def list_all(connection: Connection) -> list[DomainRecord]:
    rows = connection.execute(select(domains).order_by(domains.c.name)).all()
    return [_record(row) for row in rows]
