"""PostgreSQL's session advisory locks, as leases between the processes of a deployment."""

from __future__ import annotations

from sqlalchemy import Connection, text

__all__ = ["release", "take"]


def take(connection: Connection, *, key: int) -> bool:
    """Take lock ``key`` for ``connection``'s session if no other session holds it (no wait).
    It is the session's until released or until the session ends: closed, or its process or
    host gone, which the server sees when the connection drops."""
    return bool(
        connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
    )


def release(connection: Connection, *, key: int) -> None:
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
