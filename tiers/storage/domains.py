"""Repository of pseudonymisation domains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from tiers.storage.tables import domains

__all__ = ["DomainRecord", "add", "get", "list_all"]


@dataclass(frozen=True, slots=True)
class DomainRecord:
    id: int
    name: str
    role: str
    card_luhn: bool
    created_at: datetime


def _record(row: object) -> DomainRecord:
    return DomainRecord(row.id, row.name, row.role, row.card_luhn, row.created_at)  # type: ignore[attr-defined]


def add(
    connection: Connection, *, name: str, role: str, card_luhn: bool, now: datetime
) -> DomainRecord:
    result = connection.execute(
        insert(domains).values(name=name, role=role, card_luhn=card_luhn, created_at=now)
    )
    (new_id,) = result.inserted_primary_key or (None,)
    assert new_id is not None
    return DomainRecord(int(new_id), name, role, card_luhn, now)


def get(connection: Connection, *, name: str) -> DomainRecord | None:
    row = connection.execute(select(domains).where(domains.c.name == name)).one_or_none()
    return None if row is None else _record(row)


def list_all(connection: Connection) -> list[DomainRecord]:
    rows = connection.execute(select(domains).order_by(domains.c.name)).all()
    return [_record(row) for row in rows]
