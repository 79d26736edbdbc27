"""Repository of the requests for clients that a second admin approves (tiers.approvals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from tiers.storage.tables import client_requests

__all__ = ["RequestRecord", "add", "by_id", "decide", "list_all", "pending_for"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: str
    kind: str  # "add" or "rotate"
    name: str
    role: str
    domain: str | None
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    state: str  # "pending" or "approved" (an expiry is not written: see state_at)
    decided_by: str | None
    decided_at: datetime | None
    seal: str

    def state_at(self, now: datetime) -> str:
        """The request's state at ``now``: ``expired`` once a pending one is past its time."""
        return "expired" if self.state == "pending" and now >= self.expires_at else self.state


def _record(row: Row[Any]) -> RequestRecord:
    return RequestRecord(**row._asdict())


def add(connection: Connection, record: RequestRecord) -> None:
    connection.execute(
        insert(client_requests).values(
            {name: getattr(record, name) for name in RequestRecord.__dataclass_fields__}
        )
    )


def by_id(connection: Connection, *, request_id: str) -> RequestRecord | None:
    row = connection.execute(
        select(client_requests).where(client_requests.c.id == request_id)
    ).first()
    return None if row is None else _record(row)


def pending_for(connection: Connection, *, name: str) -> list[RequestRecord]:
    rows = connection.execute(
        select(client_requests).where(
            client_requests.c.name == name, client_requests.c.state == "pending"
        )
    )
    return [_record(row) for row in rows]


def list_all(connection: Connection) -> list[RequestRecord]:
    rows = connection.execute(select(client_requests).order_by(client_requests.c.requested_at))
    return [_record(row) for row in rows]


def decide(connection: Connection, record: RequestRecord) -> None:
    """Write ``record``'s decision (state, by whom, when) and its seal."""
    connection.execute(
        update(client_requests)
        .where(client_requests.c.id == record.id)
        .values(
            state=record.state,
            decided_by=record.decided_by,
            decided_at=record.decided_at,
            seal=record.seal,
        )
    )
