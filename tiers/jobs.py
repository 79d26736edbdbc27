"""File jobs: a partner's CSV tokenised on the server, its outputs kept until deleted.

The upload is tokenised while it streams in: the clear file is never written anywhere. The
outputs appear (atomically) only when the whole file succeeded. A job interrupted by a crash is
marked ``failed`` (code ``interrupted``) when the service starts again, its partial files are
removed, and the partner submits the file again: nothing is ever half-delivered.

The outputs are pseudonymised data, still personal data: the partner deletes them once fetched
(:func:`delete_job`), and :func:`purge_jobs` deletes those of every job finished more than
``TIERS_JOB_RETENTION_DAYS`` ago. A deleted job stays listed, with its counts, as ``deleted``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

from sqlalchemy import Connection

from audit import Action, Counts
from errors import InvalidRequest, NotFound, StateConflict, TiersError
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.files import FileReport, parse_column_spec, tokenise_file
from tiers.storage import job_relay
from tiers.storage import jobs as jobs_repo
from tiers.storage.jobs import JobRecord

__all__ = [
    "Heartbeat",
    "JobRecord",
    "delete_job",
    "fail_file_job",
    "finish_file_job",
    "get_job",
    "job_file",
    "list_jobs",
    "open_file_job",
    "owned_job",
    "purge_jobs",
    "recover_jobs",
    "run_file_job",
]

_JOB_ID = re.compile(r"[0-9a-f]{32}")


def _root(deployment: Deployment) -> Path:
    return deployment.settings.home / "jobs"


def _directory(deployment: Deployment, job_id: str) -> Path:
    """Where the job's outputs are written (and stay, on SQLite: :mod:`tiers.filestore`)."""
    return _root(deployment) / job_id


_FILES = ("output", "rejects")


def _name(job_id: str, which: str) -> str:
    return f"jobs/{job_id}/{which}.csv"


def _remove(deployment: Deployment, job_ids: Sequence[str]) -> None:
    deployment.files.delete([f"jobs/{job_id}/" for job_id in job_ids])


def open_file_job(deployment: Deployment, *, access: Access, domain: str) -> str:
    """Create a running job (listed from now on) and its directory; returns its id. A client
    runs at most ``TIERS_MAX_RUNNING_JOBS`` jobs at once (:class:`StateConflict`,
    ``too_many_jobs``): each job in a process of its own holds one."""
    require(access, Action.TOKENISE_FILE, domain)
    if access.client_id is None:
        raise TiersError("a file job needs an API client", code="no_client")
    job_id = uuid.uuid4().hex
    limit = deployment.settings.max_running_jobs
    with deployment.transaction() as connection:
        if jobs_repo.running(connection, client_id=access.client_id) >= limit:
            raise StateConflict(
                f"the client runs {limit} file jobs already: wait for one to end",
                code="too_many_jobs",
            )
        _directory(deployment, job_id).mkdir(parents=True, mode=0o700)
        jobs_repo.create(
            connection, job_id=job_id, client_id=access.client_id, domain=domain, now=access.now
        )
    return job_id


def fail_file_job(deployment: Deployment, job_id: str, code: str) -> None:
    """Mark failed a job that did not end by itself (its upload broke off or was refused first,
    its process died), if it is still running, and remove its directory; a job that ended
    meanwhile keeps its state and its files."""
    with deployment.transaction() as connection:
        job = jobs_repo.get(connection, job_id=job_id)
        if job is not None and job.state != "running":
            return
        if job is not None:
            jobs_repo.finish(connection, job_id=job_id, state="failed", now=_now(), error_code=code)
            job_relay.forget(connection, job_id=job_id)
    shutil.rmtree(_directory(deployment, job_id), ignore_errors=True)


def run_file_job(
    deployment: Deployment,
    *,
    access: Access,
    stream: IO[bytes],
    domain: str,
    columns: Sequence[str],
    keep: Sequence[str] = (),
    delimiter: str | None = None,
    encoding: str = "utf-8",
    register: bool = True,
    job_id: str | None = None,
) -> JobRecord:
    """Tokenise ``stream`` into the outputs of job ``job_id`` (created now when None, see
    :func:`open_file_job`) and close it (done or failed).

    The tokenisation itself is :func:`tiers.files.tokenise_file`, which records the access.
    Errors are re-raised after the job is marked failed.
    """
    require(access, Action.TOKENISE_FILE, domain)
    specs = [parse_column_spec(text) for text in columns]
    job_id = job_id or open_file_job(deployment, access=access, domain=domain)
    directory = _directory(deployment, job_id)
    beats = Heartbeat(deployment, job_id)
    try:
        report: FileReport = tokenise_file(
            deployment,
            access=access,
            source=stream,
            output=directory / "output.csv",
            rejects=directory / "rejects.csv",
            domain=domain,
            columns=specs,
            keep=keep,
            delimiter=delimiter,
            encoding=encoding,
            register=register,
            progress=beats,
        )
    except BaseException as error:
        code = error.code if isinstance(error, TiersError) else "internal"
        with deployment.transaction() as connection:
            jobs_repo.finish(connection, job_id=job_id, state="failed", now=_now(), error_code=code)
            job_relay.forget(connection, job_id=job_id)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return finish_file_job(deployment, job_id, report)


def finish_file_job(deployment: Deployment, job_id: str, report: FileReport) -> JobRecord:
    """Mark done, with its counts, a job whose outputs are in place (published in the same
    transaction, see :mod:`tiers.filestore`)."""
    with deployment.transaction() as connection:
        for which in _FILES:
            deployment.files.publish(connection, _name(job_id, which))
        job_relay.forget(connection, job_id=job_id)
        jobs_repo.finish(
            connection,
            job_id=job_id,
            state="done",
            now=_now(),
            rows_in=report.rows_in,
            rows_out=report.rows_out,
            rows_rejected=report.rows_rejected,
        )
        job = jobs_repo.get(connection, job_id=job_id)
    assert job is not None
    if not deployment.embedded:  # the staging folder is empty now
        shutil.rmtree(_directory(deployment, job_id), ignore_errors=True)
    return job


def _now() -> datetime:
    return datetime.now(UTC)


class Heartbeat:
    """Progress callback that tells other workers the job is alive (PostgreSQL; SQLite has
    one writer at a time, and the tokenising transaction holds it)."""

    def __init__(self, deployment: Deployment, job_id: str) -> None:
        self._deployment = deployment
        self._job_id = job_id
        self._last = _now()
        self._enabled = not deployment.embedded
        # Beat well within the time after which other workers take a job for dead.
        self._every = timedelta(seconds=max(1.0, deployment.settings.job_stale_seconds / 4))

    def __call__(self, done: int, total: int) -> None:
        now = _now()
        if self._enabled and now - self._last >= self._every:
            with self._deployment.transaction() as connection:
                jobs_repo.heartbeat(connection, job_id=self._job_id, rows_in=done, now=now)
            self._last = now


def owned_job(deployment: Deployment, access: Access, job_id: str) -> JobRecord:
    """Job ``job_id`` if it is the caller's (another client's job is answered as unknown);
    records nothing."""
    job = None
    if _JOB_ID.fullmatch(job_id):
        with deployment.engine.connect() as connection:
            job = jobs_repo.get(connection, job_id=job_id)
    if job is None or (access.role != "operator" and job.client_id != access.client_id):
        raise NotFound("unknown job", code="unknown_job")
    return job


@audited(Action.JOB_STATUS, domain_arg=None)
def get_job(deployment: Deployment, *, access: Access, job_id: str) -> JobRecord:
    """A job of the caller's (another client's job is answered as unknown)."""
    require(access, Action.JOB_READ)
    job = owned_job(deployment, access, job_id)
    with deployment.transaction() as connection:
        deployment.record(
            connection,
            access,
            action=Action.JOB_STATUS,
            domains=[job.domain],
            detail={"job": job_id, "state": job.state},
        )
    return job


@audited(Action.JOB_READ, domain_arg=None)
def list_jobs(deployment: Deployment, *, access: Access) -> list[JobRecord]:
    """The caller's jobs, newest first."""
    require(access, Action.JOB_READ)
    recover_jobs(deployment, now=_now(), at_start=False)
    with deployment.transaction() as connection:
        found = jobs_repo.of_client(connection, client_id=access.client_id or -1)
        deployment.record(
            connection, access, action=Action.JOB_READ, counts=Counts(records_out=len(found))
        )
    return found


@audited(Action.JOB_DOWNLOAD, domain_arg=None)
def job_file(
    deployment: Deployment, *, access: Access, job_id: str, which: Literal["output", "rejects"]
) -> IO[bytes]:
    """A finished job's output or rejects file, opened for reading, after the access is
    recorded; the caller closes it. The file is opened before anything else, so a deletion
    or purge that runs meanwhile cannot cut a download short: the open file is read whole
    (POSIX keeps an unlinked file until it is closed), and a file already gone answers
    :class:`NotFound` ``gone``."""
    require(access, Action.JOB_READ)
    job = owned_job(deployment, access, job_id)
    if job.state == "deleted":
        raise NotFound("the job's files were deleted", code="gone")
    if job.state != "done":
        raise NotFound(f"the job has no {which} ({job.state})", code="not_ready")
    try:
        handle = deployment.files.open(_name(job_id, which))
    except FileNotFoundError:
        raise NotFound(f"the job has no {which} file any more", code="gone") from None
    try:
        with deployment.transaction() as connection:
            deployment.record(
                connection,
                access,
                action=Action.JOB_DOWNLOAD,
                domains=[job.domain],
                counts=Counts(records_out=job.rows_out if which == "output" else job.rows_rejected),
                detail={"job": job_id, "file": which},
            )
    except BaseException:
        handle.close()
        raise
    return handle


def recover_jobs(deployment: Deployment, *, now: datetime, at_start: bool = True) -> list[str]:
    """Fail the jobs no live worker runs any more and remove their partial files.

    At start-up on SQLite (one worker), every running job is dead. On PostgreSQL, a job is dead
    when its heartbeat is older than ``job_stale_seconds``; this is checked again whenever jobs
    are listed, so a crashed worker's job shows as failed without waiting for a restart.
    """
    if deployment.embedded and not at_start:
        return []
    before = (
        now
        if deployment.embedded
        else now - timedelta(seconds=deployment.settings.job_stale_seconds)
    )
    with deployment.transaction() as connection:
        dead = jobs_repo.fail_stale(connection, before=before, now=now)
        for job_id in dead:
            job_relay.forget(connection, job_id=job_id)
    _remove(deployment, dead)
    return dead


@audited(Action.JOB_DELETE, domain_arg=None)
def delete_job(deployment: Deployment, *, access: Access, job_id: str) -> JobRecord:
    """Delete a finished job's output and rejects files now; the job stays listed as
    ``deleted``. A running job cannot be deleted (:class:`StateConflict`, ``job_running``);
    deleting a deleted job again removes nothing more and is answered the same."""
    require(access, Action.JOB_DELETE)
    job = owned_job(deployment, access, job_id)
    if job.state == "running":
        raise StateConflict("the job is still running", code="job_running")
    with deployment.transaction() as connection:
        jobs_repo.delete_finished(connection, job_id=job_id)
        deployment.record(
            connection,
            access,
            action=Action.JOB_DELETE,
            domains=[job.domain],
            detail={"job": job_id, "state": job.state},
        )
    # After the commit: a crash in between leaves files that job_file no longer serves and
    # that purge_jobs removes.
    _remove(deployment, [job_id])
    return dataclasses.replace(job, state="deleted")


@audited(Action.JOB_PURGE, domain_arg=None)
def purge_jobs(
    deployment: Deployment, *, access: Access, older_than_days: int | None = None
) -> int:
    """Delete the files of every job finished more than ``older_than_days`` ago (default
    ``TIERS_JOB_RETENTION_DAYS``; 0 takes every finished job), and any job directory left
    behind by a crash. Returns the number of jobs deleted; running jobs are never touched."""
    require(access, Action.JOB_PURGE)
    days = deployment.settings.job_retention_days if older_than_days is None else older_than_days
    if days < 0:
        raise InvalidRequest("the retention period cannot be negative", code="bad_retention")
    recover_jobs(deployment, now=access.now, at_start=False)
    with deployment.transaction() as connection:
        leftovers = _leftovers(deployment, connection)  # before this purge's own deletions
        ids = jobs_repo.delete_finished(
            connection, finished_before=access.now - timedelta(days=days)
        )
        deployment.record(
            connection,
            access,
            action=Action.JOB_PURGE,
            counts=Counts(records_in=len(ids)),
            detail={"retention_days": days, "leftover_directories": len(leftovers)},
        )
    _remove(deployment, [*ids, *leftovers])
    return len(ids)


def _leftovers(deployment: Deployment, connection: Connection) -> list[str]:
    """Job directories that serve nothing: those of failed or deleted jobs (a crash came
    between the commit and the removal) and those of no job at all (a crash came between
    creating the directory and the job), once untouched for ``job_stale_seconds``, so that a
    job being created now is not taken. On PostgreSQL, also the stored files of failed or
    deleted jobs (:mod:`tiers.filestore`; a crash came between the commit and the removal)."""
    root = _root(deployment)
    names = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and _JOB_ID.fullmatch(p.name))
        if root.is_dir()
        else []
    )
    stored = (
        sorted({name.split("/")[1] for name in deployment.files.names("jobs/")})
        if not deployment.embedded
        else []
    )
    known = jobs_repo.states(connection, job_ids=sorted({*names, *stored}))
    cutoff = time.time() - deployment.settings.job_stale_seconds
    left = [
        name
        for name in names
        if known.get(name) in ("failed", "deleted")
        or (name not in known and (root / name).stat().st_mtime < cutoff)
    ]
    return sorted({*left, *(name for name in stored if known.get(name) in ("failed", "deleted"))})
