"""Repository of inbox deliveries and of withdrawn references."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from tiers.storage._dialect import insert_ignoring_duplicates, rows_where_in
from tiers.storage.tables import deliveries, domains, withdrawn

__all__ = [
    "DeliveryRecord",
    "ack",
    "add",
    "get",
    "list_for",
    "mark_withdrawn",
    "purge",
    "withdrawn_refs",
]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    recipient_id: int
    kind: str
    name: str
    rows: int
    sha256: str
    sender: str
    created_at: datetime
    acked_at: datetime | None


def add(connection: Connection, record: DeliveryRecord) -> None:
    connection.execute(
        insert(deliveries).values(
            id=record.id,
            recipient_id=record.recipient_id,
            kind=record.kind,
            name=record.name,
            rows=record.rows,
            sha256=record.sha256,
            sender=record.sender,
            created_at=record.created_at,
            acked_at=None,
        )
    )


def get(connection: Connection, *, delivery_id: str) -> DeliveryRecord | None:
    row = connection.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one_or_none()
    return None if row is None else DeliveryRecord(**row._asdict())


def list_for(
    connection: Connection, *, recipient_id: int, include_acked: bool
) -> list[DeliveryRecord]:
    query = select(deliveries).where(deliveries.c.recipient_id == recipient_id)
    if not include_acked:
        query = query.where(deliveries.c.acked_at.is_(None))
    rows = connection.execute(query.order_by(deliveries.c.created_at, deliveries.c.id))
    return [DeliveryRecord(**row._asdict()) for row in rows]


def ack(connection: Connection, *, delivery_id: str, now: datetime) -> None:
    connection.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.acked_at.is_(None))
        .values(acked_at=now)
    )


def purge(connection: Connection, *, acked_before: datetime) -> list[str]:
    """Delete the deliveries acknowledged before ``acked_before``; their ids (files to remove)."""
    ids = list(
        connection.execute(
            select(deliveries.c.id).where(
                deliveries.c.acked_at.is_not(None), deliveries.c.acked_at < acked_before
            )
        ).scalars()
    )
    if ids:
        connection.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
    return ids


def mark_withdrawn(connection: Connection, *, refs: Sequence[bytes], now: datetime) -> None:
    if refs:
        connection.execute(
            insert_ignoring_duplicates(connection, withdrawn),
            [{"ref": ref, "withdrawn_at": now} for ref in refs],
        )


def withdrawn_refs(connection: Connection, *, refs: Sequence[bytes]) -> set[bytes]:
    """Those of ``refs`` whose card was withdrawn (:func:`~tiers.storage._dialect.rows_where_in`:
    one array parameter on PostgreSQL, chunks of placeholders on SQLite)."""
    rows = rows_where_in(connection, _WITHDRAWN, refs)
    return {bytes(ref) for (ref,) in rows}


_WITHDRAWN = "SELECT ref FROM withdrawn WHERE ref {in}"


def backlog(connection: Connection) -> dict[str, tuple[int, int]]:
    """Deliveries not yet acknowledged, by recipient domain: ``(deliveries, rows)``."""
    rows = connection.execute(
        select(domains.c.name, func.count(), func.coalesce(func.sum(deliveries.c.rows), 0))
        .join(domains, domains.c.id == deliveries.c.recipient_id)
        .where(deliveries.c.acked_at.is_(None))
        .group_by(domains.c.name)
    )
    return {str(name): (int(count), int(total)) for name, count, total in rows}
