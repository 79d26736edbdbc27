"""Repository of shared token buckets (``limit_buckets``; PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import Connection, update
from sqlalchemy.dialects import postgresql

from tiers.storage.tables import limit_buckets

__all__ = ["lock", "save"]


def lock(
    connection: Connection, *, key: str, full: tuple[float, float], now: float
) -> tuple[tuple[float, float], float]:
    """Bucket ``key``'s levels and when they were computed, its row locked until the end of
    the transaction; a new bucket is created ``full`` at ``now``. One statement either way."""
    insert = postgresql.insert(limit_buckets).values(key=key, first=full[0], second=full[1], at=now)
    row = connection.execute(
        insert.on_conflict_do_update(
            index_elements=[limit_buckets.c.key], set_={"key": insert.excluded.key}
        ).returning(limit_buckets.c.first, limit_buckets.c.second, limit_buckets.c.at)
    ).one()
    return (row.first, row.second), row.at


def save(connection: Connection, *, key: str, levels: tuple[float, float], now: float) -> None:
    connection.execute(
        update(limit_buckets)
        .where(limit_buckets.c.key == key)
        .values(first=levels[0], second=levels[1], at=now)
    )
