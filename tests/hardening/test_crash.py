"""Crash safety: the real service (uvicorn on 127.0.0.1) killed with SIGKILL in the middle of a
file job, then restarted: the job is failed and re-runnable, nothing of it was registered, and
the access log verifies."""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import Database
from tests.hardening.service import (
    InFlight,
    count,
    free_port,
    kill,
    kill_in_flight,
    request,
    start,
    stop,
    tiers,
)

BOUNDARY = "tiers-crash-test"


def slow_upload(rows: int) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="big.csv"\r\nContent-Type: text/csv\r\n\r\ncard\r\n'
    ).encode()
    for start_row in range(0, rows, 2000):
        yield "".join(f"{10_000_000 + n}\r\n" for n in range(start_row, start_row + 2000)).encode()
        time.sleep(0.05)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _partner_home(database: Database, **settings: str) -> tuple[dict[str, str], str]:
    """The environment of a deployment with a partner domain, and its client's key."""
    env = {**os.environ, **database.env(), "TIERS_ARGON2_PROFILE": "test", **settings}
    tiers("init", env=env)
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    token = tiers(
        "client", "add", "casino-app", "--role", "partner", "--domain", "casino", env=env
    ).strip()
    return env, token


def test_a_file_job_killed_mid_upload_is_failed_and_can_be_run_again(
    database: Database, tmp_path: Path
) -> None:
    env, token = _partner_home(database, TIERS_JOB_STALE_SECONDS="2")
    port = free_port()
    server = start(env, port)
    flight = InFlight(
        port,
        "/v1/files?column=card=card",
        token,
        slow_upload(400_000),
        f"multipart/form-data; boundary={BOUNDARY}",
    )
    kill_in_flight(server, flight, 1.0)  # well into the file

    server = start(env, port)
    try:
        time.sleep(2.5)  # PostgreSQL: the dead worker's heartbeat goes stale
        status, jobs = request(port, "GET", "/v1/jobs", token)
        assert 200 == status and isinstance(jobs, list)
        assert [("failed", "interrupted")] == [(j["state"], j["error_code"]) for j in jobs]
        assert 0 == count(database, "subjects")
        assert not any((database.home / "jobs").rglob("*.csv"))
        # Run again: it completes.
        boundary_body = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="small.csv"\r\n\r\ncard\r\n12345678\r\n'
            f"--{BOUNDARY}--\r\n"
        ).encode()
        flight = InFlight(
            port,
            "/v1/files?column=card=card",
            token,
            boundary_body,
            f"multipart/form-data; boundary={BOUNDARY}",
        )
        flight.join()
        assert 202 == flight.status
    finally:
        stop(server)
    assert "audit log intact" in tiers("audit", "verify", env=env)


def _runs(job_id: str) -> bool:
    """Whether a process runs the job (its command line ends with the job's id)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read().split(b"\0")[-2:-1] == [job_id.encode()]:
                    return True
        except OSError:
            continue
    return False


def test_a_job_in_parts_ends_with_the_service_killed_under_it(
    database: Database, tmp_path: Path
) -> None:
    env, token = _partner_home(database)
    port = free_port()
    server = start(env, port)
    status, job = request(port, "POST", "/v1/files", token, {"column": ["card=card"]})
    assert 202 == status and isinstance(job, dict)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    part = "card\r\n" + "".join(f"{10_000_000 + n}\r\n" for n in range(50_000))
    connection.request(
        "PUT", f"/v1/files/{job['id']}/parts/1", body=part.encode(),
        headers={"Authorization": f"Bearer {token}", "X-Purpose": "crash test"},
    )  # fmt: skip
    assert 200 == connection.getresponse().status
    assert _runs(job["id"])
    kill(server)  # SIGKILL: the runner is left without the worker that started it
    deadline = time.monotonic() + 20
    while _runs(job["id"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _runs(job["id"]), "the runner outlived its service"
    server = start(env, port)
    try:
        status, jobs = request(port, "GET", "/v1/jobs", token)
        assert [("failed", "interrupted")] == [(j["state"], j["error_code"]) for j in jobs]  # type: ignore[union-attr]
        assert 0 == count(database, "subjects")
        assert not any((database.home / "jobs").rglob("*"))
    finally:
        stop(server)
    assert "audit log intact" in tiers("audit", "verify", env=env)
