"""The service's vital signs as they stand: the log's size and the age of its newest
checkpoint, file jobs by state, inbox backlogs, the database's connection pool. Read by the
metrics endpoint at each scrape and shown on the operator's console; they name no customer
and touch no data, so reading them is not an access-log entry (like the health checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tiers.deployment import Deployment
from tiers.storage import audit_log
from tiers.storage import inbox as inbox_repo
from tiers.storage import jobs as jobs_repo
from tiers.storage.jobs import JobRecord

__all__ = ["Vitals", "read_vitals"]


@dataclass(frozen=True, slots=True)
class Vitals:
    log_entries: int  # the next sequence number: every entry ever appended, purged or not
    unsigned_entries: int  # appended since the newest checkpoint
    checkpoint_age_seconds: float | None  # None before the first checkpoint
    jobs: dict[str, int]  # file jobs by state
    inbox: dict[str, tuple[int, int]]  # unacknowledged (deliveries, rows) by recipient domain
    pool_in_use: int | None  # connections checked out of the pool (None: no pool to count)
    pool_size: int | None
    # the newest file jobs, with their clients' names (ids, states, counts: no data)
    recent_jobs: list[tuple[JobRecord, str]]


def _pool(deployment: Deployment) -> tuple[int | None, int | None]:
    pool = deployment.engine.pool
    in_use = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    return (
        int(in_use()) if callable(in_use) else None,
        int(size()) if callable(size) else None,
    )


def read_vitals(deployment: Deployment, *, now: datetime, recent_jobs: int = 0) -> Vitals:
    """One read of the database (raises :class:`~errors.DatabaseUnavailable`-like errors of
    the engine when it is down: the caller reports the service as not ready)."""
    with deployment.reading() as connection:
        next_seq, last_checkpoint = audit_log.peek_state(connection)
        signed_at = audit_log.newest_checkpoint_time(connection)
        jobs = jobs_repo.count_by_state(connection)
        inbox = inbox_repo.backlog(connection)
        recent = jobs_repo.recent(connection, limit=recent_jobs)
    in_use, size = _pool(deployment)
    return Vitals(
        log_entries=next_seq,
        unsigned_entries=max(next_seq - last_checkpoint, 0),
        checkpoint_age_seconds=None if signed_at is None else (now - signed_at).total_seconds(),
        jobs=jobs,
        inbox=inbox,
        pool_in_use=in_use,
        pool_size=size,
        recent_jobs=recent,
    )
