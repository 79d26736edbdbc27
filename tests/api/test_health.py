from __future__ import annotations

import json
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
    with TestClient(create_app(database.settings())) as client:
        assert {"status": "ok"} == client.get("/healthz").json()


def test_readyz_fails_before_init_and_recovers_without_restart(database: Database) -> None:
    with TestClient(create_app(database.settings())) as client:
        before = client.get("/readyz")
        assert 503 == before.status_code
        # No key file in the home, or no key pair under the label in the token.
        missing = "hsm_key_missing" if database.hsm_key else "no_master_key"
        assert missing == before.json()["code"]
        refused = client.post("/v1/pseudonymise", json={"kind": "card", "values": ["12345678"]})
        assert 503 == refused.status_code
        initialise(database.settings(), access=ACCESS)
        after = client.get("/readyz")
        ready = {"status": "ready", "witnesses": {"configured": 0}}
        assert (200, ready) == (after.status_code, after.json())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("access_log", [False, True])
def test_tiers_serve_runs_a_real_server(
    database: Database, tmp_path: Path, access_log: bool
) -> None:
    """A real uvicorn; its line per request only when asked for (--access-log)."""
    tiers = Path(sys.executable).with_name("tiers")
    env = {**os.environ, **database.env()}
    subprocess.run([str(tiers), "init"], env=env, check=True, capture_output=True)
    port = free_port()
    flags = ["--access-log"] if access_log else []
    server = subprocess.Popen(
        [str(tiers), "serve", "--host", "127.0.0.1", "--port", str(port), *flags],
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
        assert body == b'{"status":"ready","witnesses":{"configured":0}}'
    finally:
        server.send_signal(signal.SIGINT)
        _stdout, stderr = server.communicate(timeout=30)
    # the warning for a generated development key (none for a key in a token)
    assert (b"DEVELOPMENT master key" in stderr) is (database.hsm_key is None)
    assert b"no witness configured" in stderr
    # the server's own lines are JSON objects, one a line, each with its request id (if any)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]
    assert any("Uvicorn running" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    assert all("color_message" not in line for line in lines)
    readyz = [line for line in lines if 'GET /readyz HTTP/1.1" 200' in line["message"]]
    assert bool(readyz) is access_log
