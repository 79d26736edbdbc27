"""The ``meta`` table: named values about the deployment (e.g. the master key check value)."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from tiers.storage.tables import meta

__all__ = ["get", "put"]


def get(connection: Connection, *, name: str) -> str | None:
    return connection.execute(select(meta.c.value).where(meta.c.name == name)).scalar_one_or_none()


def put(connection: Connection, *, name: str, value: str) -> None:
    if get(connection, name=name) is None:
        connection.execute(insert(meta).values(name=name, value=value))
    else:
        connection.execute(update(meta).where(meta.c.name == name).values(value=value))
