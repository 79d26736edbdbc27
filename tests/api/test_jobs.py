"""A file job's outputs are pseudonymised data: the partner deletes them once fetched, and the
operator's purge deletes those of every job finished more than the retention period ago."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from errors import InvalidRequest
from tests.api.conftest import Api
from tests.api.test_partner import CLEAR, upload
from tests.conftest import ACCESS as TEST_ACCESS
from tiers.deployment import Deployment
from tiers.jobs import delete_job, job_file, purge_jobs
from tiers.storage import clients as client_repo
from tiers.storage import jobs as job_repo
from tiers.storage.tables import jobs

# The jobs are created now, by the wall clock: the purge's "now" must be the same clock's.
ACCESS = replace(TEST_ACCESS, now=datetime.now(UTC))
CONTENT = f"card,email,amount\n{CLEAR[0]},{CLEAR[2]},10.00\nbad,nobody,1\n".encode()


def _directory(api: Api, job_id: str) -> Path:
    return api.database.home / "jobs" / job_id


def _stored(api: Api, job_id: str) -> set[str]:
    """The names of the job's stored files (tiers.filestore: the home or the database)."""
    return {name.rsplit("/", 1)[1] for name in api.database.stored(f"jobs/{job_id}/")}


def _present(api: Api) -> set[str]:
    """The jobs with stored files, and the folders in the home's ``jobs``."""
    stored = {name.split("/")[1] for name in api.database.stored("jobs/")}
    return stored | {path.name for path in (api.database.home / "jobs").iterdir()}


def _states(api: Api) -> dict[str, str]:
    listed = api.http.get("/v1/jobs", headers=api.headers("casino-app")).json()
    return {job["id"]: job["state"] for job in listed}


def _running_job(deployment: Deployment, job_id: str, *, days_ago: int = 0) -> None:
    """A job row as a live worker that is tokenising leaves it (it reported just now)."""
    with deployment.transaction() as connection:
        client = client_repo.by_name(connection, name="casino-app")
        assert client is not None
        job_repo.create(
            connection,
            job_id=job_id,
            client_id=client.id,
            domain="casino",
            now=datetime.now(UTC) - timedelta(days=days_ago),
        )
        job_repo.heartbeat(connection, job_id=job_id, rows_in=0, now=datetime.now(UTC))


def _finished_days_ago(deployment: Deployment, job_id: str, days: int) -> None:
    with deployment.transaction() as connection:
        connection.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(finished_at=datetime.now(UTC) - timedelta(days=days))
        )


@pytest.fixture
def deployment(api: Api) -> Iterator[Deployment]:
    opened = Deployment.open(api.database.settings(argon2_profile="test"))
    yield opened
    opened.close()


def test_a_partner_deletes_a_finished_job_whose_files_are_then_gone(api: Api) -> None:
    job = upload(api, CONTENT)
    assert (202, "done") == (job["status"], job["state"])
    directory = _directory(api, job["id"])
    assert {"output.csv", "rejects.csv"} == _stored(api, job["id"])

    other = api.http.delete(f"/v1/jobs/{job['id']}", headers=api.headers("sncf-app"))
    assert (404, "unknown_job") == (other.status_code, other.json()["error"]["code"])
    assert "output.csv" in _stored(api, job["id"])

    response = api.http.delete(f"/v1/jobs/{job['id']}", headers=api.headers("casino-app"))
    body = response.json()
    assert (200, "deleted") == (response.status_code, body["state"])
    assert (job["rows_in"], job["rows_out"], job["rows_rejected"]) == (
        body["rows_in"],
        body["rows_out"],
        body["rows_rejected"],
    )
    assert not directory.exists() and not _stored(api, job["id"])
    for which in ("output", "rejects"):
        fetched = api.http.get(f"/v1/jobs/{job['id']}/{which}", headers=api.headers("casino-app"))
        assert (404, "gone") == (fetched.status_code, fetched.json()["error"]["code"])
    assert "deleted" == _states(api)[job["id"]]

    again = api.http.delete(f"/v1/jobs/{job['id']}", headers=api.headers("casino-app"))
    assert (200, "deleted") == (again.status_code, again.json()["state"])
    logged = [e for e in api.database.audit_entries() if e.action == "job_delete"]
    assert [("sncf-app", "error"), ("casino-app", "ok"), ("casino-app", "ok")] == [
        (e.actor, e.outcome) for e in logged
    ]
    assert [(("casino",), "done"), (("casino",), "deleted")] == [
        (e.domains, e.detail["state"]) for e in logged[1:]
    ]


def test_a_download_under_way_is_read_whole_when_the_job_is_deleted_meanwhile(
    api: Api, deployment: Deployment
) -> None:
    job_id = upload(api, CONTENT)["id"]
    expected = api.http.get(f"/v1/jobs/{job_id}/output", headers=api.headers("casino-app"))
    with deployment.engine.connect() as connection:
        client = client_repo.by_name(connection, name="casino-app")
    assert client is not None
    partner = replace(
        ACCESS, actor="casino-app", role="partner", domain="casino", client_id=client.id
    )
    with job_file(deployment, access=partner, job_id=job_id, which="output") as handle:
        first = handle.read(10)
        assert "deleted" == delete_job(deployment, access=partner, job_id=job_id).state
        assert not _directory(api, job_id).exists() and not _stored(api, job_id)
        assert expected.content == first + handle.read()
    fetched = api.http.get(f"/v1/jobs/{job_id}/output", headers=api.headers("casino-app"))
    assert (404, "gone") == (fetched.status_code, fetched.json()["error"]["code"])


def test_a_running_job_is_not_deleted(api: Api, deployment: Deployment) -> None:
    _running_job(deployment, "a" * 32)
    _directory(api, "a" * 32).mkdir(parents=True)
    (_directory(api, "a" * 32) / ".output.csv.x.part").write_text("being written")
    response = api.http.delete(f"/v1/jobs/{'a' * 32}", headers=api.headers("casino-app"))
    assert (409, "job_running") == (response.status_code, response.json()["error"]["code"])
    assert (_directory(api, "a" * 32) / ".output.csv.x.part").exists()
    refused = api.database.audit_entries()[-1]
    assert ("job_delete", "error", "job_running") == (
        refused.action,
        refused.outcome,
        refused.code,
    )
    assert "running" == _states(api)["a" * 32]


def test_purge_deletes_what_the_retention_period_no_longer_keeps(
    api: Api, deployment: Deployment
) -> None:
    old, recent, fetched = (upload(api, CONTENT)["id"] for _ in range(3))
    _finished_days_ago(deployment, old, 8)
    _finished_days_ago(deployment, recent, 6)
    # A job running for a month is not finished: its files are never taken.
    _running_job(deployment, "b" * 32, days_ago=30)
    _directory(api, "b" * 32).mkdir()
    # Left behind by crashes: the files of a deleted job, a directory with no job (old and
    # new: the new one may be a job being created), and something that is not a job's.
    api.http.delete(f"/v1/jobs/{fetched}", headers=api.headers("casino-app"))
    _directory(api, fetched).mkdir()
    (_directory(api, fetched) / "output.csv").write_text("left behind")
    if not deployment.embedded:  # on PostgreSQL, its stored file too
        with deployment.engine.begin() as connection:
            deployment.files.put_bytes(connection, f"jobs/{fetched}/output.csv", b"left behind")
    for name in ("c" * 32, "d" * 32, "notes"):
        _directory(api, name).mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(_directory(api, "c" * 32), (an_hour_ago, an_hour_ago))

    assert 1 == purge_jobs(deployment, access=ACCESS)

    entry = api.database.audit_entries()[-1]
    assert ("job_purge", 1) == (entry.action, entry.counts.records_in)
    assert {"retention_days": 7, "leftover_directories": 2} == dict(entry.detail)
    assert {recent, "b" * 32, "d" * 32, "notes"} == _present(api)
    states = _states(api)
    assert ("deleted", "done", "running") == (states[old], states[recent], states["b" * 32])

    assert 1 == purge_jobs(deployment, access=ACCESS, older_than_days=0)
    assert {"b" * 32, "d" * 32, "notes"} == _present(api)
    assert "running" == _states(api)["b" * 32]


def test_the_retention_period_comes_from_the_settings_and_cannot_be_negative(
    api: Api, deployment: Deployment
) -> None:
    job = upload(api, CONTENT)["id"]
    _finished_days_ago(deployment, job, 2)
    assert 0 == purge_jobs(deployment, access=ACCESS)
    short = Deployment.open(api.database.settings(argon2_profile="test", job_retention_days=1))
    try:
        with pytest.raises(InvalidRequest) as refused:
            purge_jobs(short, access=ACCESS, older_than_days=-1)
        assert "bad_retention" == refused.value.code
        assert {"output.csv", "rejects.csv"} == _stored(api, job)
        assert 1 == purge_jobs(short, access=ACCESS)
    finally:
        short.close()
    assert not _directory(api, job).exists() and not _stored(api, job)
