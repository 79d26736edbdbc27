from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import create_app
from tests.conftest import ACCESS, Database
from tiers.admin import initialise


def test_healthz_answers_without_a_database(database: Database) -> None:
    client = TestClient(create_app(database.settings()))
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_fails_before_init_and_passes_after(database: Database) -> None:
    client = TestClient(create_app(database.settings()))
    before = client.get("/readyz")
    assert before.status_code == 503
    assert before.json()["code"] == "no_master_key"
    initialise(database.settings(), access=ACCESS)
    after = client.get("/readyz")
    assert (after.status_code, after.json()) == (200, {"status": "ready"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tiers_serve_runs_a_real_server(database: Database, tmp_path: Path) -> None:
    tiers = Path(sys.executable).with_name("tiers")
    env = {**os.environ, **database.env()}
    subprocess.run([str(tiers), "init"], env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [str(tiers), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                    body = reply.read()
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("tiers serve exited early")
                time.sleep(0.2)
        assert body == b'{"status":"ready"}'
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert b"DEVELOPMENT master key" in stderr
