"""A client that goes away mid-upload: the service logs one line and no traceback (a frame or
a message could quote data), and the access log says the client went away."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.hardening.service import STARTED, free_port, tiers

pytestmark = pytest.mark.slow


def test_a_client_gone_mid_upload_leaves_one_line_and_an_entry(
    database: Database, tmp_path: Path
) -> None:
    env = {**os.environ, **database.env(), "TIERS_ARGON2_PROFILE": "test"}
    tiers("init", env=env)
    for name, role in (("casino", "partner"), ("hub", "hub")):
        tiers("domain", "add", name, "--role", role, env=env)
    key = tiers("client", "add", "casino-app", "--role", "partner", "--domain", "casino", env=env)
    token = key.strip().split()[-1]
    port = free_port()
    log = (tmp_path / "stderr").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("tiers")), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    STARTED.append(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.2)
    head = (
        f"POST /v1/exchanges?type=purchases HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nX-Purpose: test\r\nContent-Type: text/csv\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    body = b"card,date,amount\n" + b"10000001,2026-11-01,1\n" * 200
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(head + body)
        time.sleep(0.5)  # the upload is under way; then the client goes
    time.sleep(1)
    server.send_signal(signal.SIGINT)
    server.wait(timeout=30)
    log.close()
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr
    assert "client disconnected on /v1/exchanges" in stderr
    gone = [e for e in database.audit_entries() if e.code == "client_disconnected"]
    assert [("exchange_send", "casino-app", "error")] == [
        (e.action, e.actor, e.outcome) for e in gone
    ]
