"""Repository of file jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from tiers.storage.tables import clients, jobs

__all__ = [
    "JobRecord",
    "create",
    "delete_finished",
    "fail_stale",
    "finish",
    "get",
    "heartbeat",
    "of_client",
    "running",
    "states",
]

# A job runs, then is done or failed; a finished job whose files were deleted is `deleted`.
_FINISHED = ("done", "failed")


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    client_id: int
    domain: str
    state: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    error_code: str | None
    created_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None


def create(
    connection: Connection, *, job_id: str, client_id: int, domain: str, now: datetime
) -> None:
    connection.execute(
        insert(jobs).values(
            id=job_id,
            client_id=client_id,
            domain=domain,
            state="running",
            rows_in=0,
            rows_out=0,
            rows_rejected=0,
            created_at=now,
            heartbeat_at=now,
        )
    )


def get(connection: Connection, *, job_id: str) -> JobRecord | None:
    row = connection.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
    return None if row is None else JobRecord(**row._asdict())


def of_client(connection: Connection, *, client_id: int, limit: int = 200) -> list[JobRecord]:
    rows = connection.execute(
        select(jobs)
        .where(jobs.c.client_id == client_id)
        .order_by(jobs.c.created_at.desc())
        .limit(limit)
    )
    return [JobRecord(**row._asdict()) for row in rows]


def running(connection: Connection, *, client_id: int) -> int:
    """How many of the client's jobs are running."""
    found = connection.execute(
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.client_id == client_id, jobs.c.state == "running")
    ).scalar_one()
    return int(found)


def heartbeat(connection: Connection, *, job_id: str, rows_in: int, now: datetime) -> None:
    connection.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == "running")
        .values(rows_in=rows_in, heartbeat_at=now)
    )


def finish(
    connection: Connection,
    *,
    job_id: str,
    state: str,
    now: datetime,
    rows_in: int = 0,
    rows_out: int = 0,
    rows_rejected: int = 0,
    error_code: str | None = None,
) -> None:
    connection.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            state=state,
            rows_in=rows_in,
            rows_out=rows_out,
            rows_rejected=rows_rejected,
            error_code=error_code,
            finished_at=now,
            heartbeat_at=now,
        )
    )


def fail_stale(connection: Connection, *, before: datetime, now: datetime) -> list[str]:
    """Mark failed every running job whose heartbeat is older than ``before``; their ids."""
    stale = list(
        connection.execute(
            select(jobs.c.id).where(jobs.c.state == "running", jobs.c.heartbeat_at < before)
        ).scalars()
    )
    if stale:
        connection.execute(
            update(jobs)
            .where(jobs.c.id.in_(stale))
            .values(state="failed", error_code="interrupted", finished_at=now)
        )
    return stale


def delete_finished(
    connection: Connection, *, finished_before: datetime | None = None, job_id: str | None = None
) -> list[str]:
    """Mark ``deleted`` the finished jobs (done or failed), those that finished before
    ``finished_before`` or only ``job_id``; their ids. A running job is never taken."""
    where: list[ColumnElement[bool]] = [jobs.c.state.in_(_FINISHED)]
    if finished_before is not None:
        where.append(jobs.c.finished_at < finished_before)
    if job_id is not None:
        where.append(jobs.c.id == job_id)
    ids = list(connection.execute(select(jobs.c.id).where(*where)).scalars())
    if ids:
        connection.execute(update(jobs).where(*where).values(state="deleted"))
    return ids


_STATES_CHUNK = 500


def states(connection: Connection, *, job_ids: Sequence[str]) -> dict[str, str]:
    """The state of each of ``job_ids`` that exists."""
    found: dict[str, str] = {}
    for start in range(0, len(job_ids), _STATES_CHUNK):
        chunk = job_ids[start : start + _STATES_CHUNK]
        rows = connection.execute(select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(chunk)))
        found.update({job_id: state for job_id, state in rows})
    return found


def count_by_state(connection: Connection) -> dict[str, int]:
    """File jobs by state (running, done, failed…), all clients together."""
    rows = connection.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
    return {str(state): int(count) for state, count in rows}


def recent(connection: Connection, *, limit: int) -> list[tuple[JobRecord, str]]:
    """The newest file jobs of every client, with the client's name."""
    rows = connection.execute(
        select(jobs, clients.c.name.label("client_name"))
        .join(clients, clients.c.id == jobs.c.client_id)
        .order_by(jobs.c.created_at.desc())
        .limit(limit)
    )
    found = []
    for row in rows:
        fields = row._asdict()
        name = fields.pop("client_name")
        found.append((JobRecord(**fields), str(name)))
    return found
