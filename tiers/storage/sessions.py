"""Repository of the console's sessions (tokens by their SHA-256 only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from tiers.storage.tables import console_sessions

__all__ = ["SessionRecord", "add", "by_hash", "drop", "drop_before", "touch"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: bytes
    client_id: int
    credential_version: int
    purpose: str
    created_at: datetime
    seen_at: datetime
    seal: str

    def __repr__(self) -> str:
        return f"<SessionRecord of client {self.client_id}>"


def add(connection: Connection, record: SessionRecord) -> None:
    connection.execute(
        insert(console_sessions).values(
            token_hash=record.token_hash,
            client_id=record.client_id,
            credential_version=record.credential_version,
            purpose=record.purpose,
            created_at=record.created_at,
            seen_at=record.seen_at,
            seal=record.seal,
        )
    )


def by_hash(connection: Connection, token_hash: bytes) -> SessionRecord | None:
    row = connection.execute(
        select(console_sessions).where(console_sessions.c.token_hash == token_hash)
    ).one_or_none()
    return None if row is None else SessionRecord(**row._asdict())


def touch(connection: Connection, token_hash: bytes, now: datetime) -> None:
    connection.execute(
        update(console_sessions)
        .where(console_sessions.c.token_hash == token_hash)
        .values(seen_at=now)
    )


def drop(connection: Connection, token_hash: bytes) -> None:
    connection.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash))


def drop_before(connection: Connection, *, seen_before: datetime, created_before: datetime) -> int:
    """End the sessions idle since ``seen_before`` or opened before ``created_before``."""
    result = connection.execute(
        delete(console_sessions).where(
            (console_sessions.c.seen_at < seen_before)
            | (console_sessions.c.created_at < created_before)
        )
    )
    return int(result.rowcount or 0)
