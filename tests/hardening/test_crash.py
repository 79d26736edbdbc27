"""Crash safety: the real service (uvicorn on 127.0.0.1) killed with SIGKILL in the middle of a
file job, then restarted: the job is failed and re-runnable, nothing of it was registered, and
the access log verifies."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import Database
from tests.hardening.service import free_port, request, start, tiers

BOUNDARY = "tiers-crash-test"


def slow_upload(rows: int, started: threading.Event) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="big.csv"\r\nContent-Type: text/csv\r\n\r\ncard\r\n'
    ).encode()
    for start_row in range(0, rows, 2000):
        yield "".join(f"{10_000_000 + n}\r\n" for n in range(start_row, start_row + 2000)).encode()
        started.set()
        time.sleep(0.05)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_a_file_job_killed_mid_upload_is_failed_and_can_be_run_again(
    database: Database, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **database.env(),
        "TIERS_ARGON2_PROFILE": "test",
        "TIERS_JOB_STALE_SECONDS": "2",
    }
    tiers("init", env=env)
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    token = tiers(
        "client", "add", "casino-app", "--role", "partner", "--domain", "casino", env=env
    ).strip()
    port = free_port()
    server = start(env, port)
    started = threading.Event()

    def upload() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(
                "POST",
                "/v1/files?column=card=card",
                body=slow_upload(400_000, started),
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-Purpose": "crash test",
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                },
                encode_chunked=True,
            )
            connection.getresponse()
        except OSError:
            pass  # the server died under it: that is the point

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert started.wait(30)
    time.sleep(1.0)  # well into the file
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    uploader.join(timeout=60)

    server = start(env, port)
    try:
        time.sleep(2.5)  # PostgreSQL: the dead worker's heartbeat goes stale
        status, jobs = request(port, "GET", "/v1/jobs", token)
        assert 200 == status and isinstance(jobs, list)
        assert [("failed", "interrupted")] == [(j["state"], j["error_code"]) for j in jobs]
        engine = create_engine(database.url or f"sqlite:///{database.home / 'tiers.db'}")
        with engine.connect() as connection:
            assert 0 == connection.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one()
        engine.dispose()
        assert not any((database.home / "jobs").rglob("*.csv"))
        # Run again: it completes.
        boundary_body = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="small.csv"\r\n\r\ncard\r\n12345678\r\n'
            f"--{BOUNDARY}--\r\n"
        ).encode()
        connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection_.request(
            "POST",
            "/v1/files?column=card=card",
            body=boundary_body,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Purpose": "crash test",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
        )
        assert 202 == connection_.getresponse().status
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert "audit log intact" in tiers("audit", "verify", env=env)
