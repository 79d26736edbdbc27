"""A real ``tiers serve`` (uvicorn on 127.0.0.1) for the crash tests: started, called, killed."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import Database

PURPOSE = "crash test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiers(*args: str, env: dict[str, str]) -> str:
    command = [str(Path(sys.executable).with_name("tiers")), *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout


# Every server started, so that a failing test never leaves one running (see conftest.py).
STARTED: list[subprocess.Popen[bytes]] = []


def launch(
    arguments: list[str],
    env: dict[str, str] | None,
    port: int,
    ready: str,
    output: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Run ``tiers *arguments`` and wait until ``GET ready`` answers 200 on ``port``; its
    standard output and error go to ``output`` if given (to be searched), else nowhere."""
    with contextlib.ExitStack() as stack:
        sink = subprocess.DEVNULL if output is None else stack.enter_context(output.open("ab"))
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("tiers")), *arguments],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    STARTED.append(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", ready)
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    pytest.fail(f"tiers {arguments[0]} did not start")


def start(
    env: dict[str, str], port: int, output: Path | None = None
) -> subprocess.Popen[bytes]:
    return launch(["serve", "--port", str(port)], env, port, "/readyz", output)


def request(
    port: int,
    method: str,
    path: str,
    token: str,
    body: object = None,
    *,
    timeout: float = 60,
) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw


class InFlight:
    """A request sent from a thread, to be cut short by killing the server."""

    def __init__(
        self,
        port: int,
        path: str,
        token: str,
        body: bytes | Iterable[bytes],
        content_type: str,
    ) -> None:
        self.sent = threading.Event()
        self.status: int | None = None
        self._thread = threading.Thread(
            target=self._send, args=(port, path, token, body, content_type)
        )
        self._thread.start()

    def _send(
        self, port: int, path: str, token: str, body: bytes | Iterable[bytes], content_type: str
    ) -> None:
        if not isinstance(body, bytes):
            body = self._announced(body)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-Purpose": PURPOSE,
                    "Content-Type": content_type,
                },
                encode_chunked=not isinstance(body, bytes),
            )
            self.sent.set()
            self.status = connection.getresponse().status
        except OSError:
            pass  # the server died under it: that is the point
        finally:
            self.sent.set()

    def _announced(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """A streamed body is under way once its first chunk is out."""
        for chunk in chunks:
            yield chunk
            self.sent.set()

    def join(self) -> None:
        self._thread.join(timeout=120)


def kill(server: subprocess.Popen[bytes]) -> None:
    server.kill()  # SIGKILL: no handler, no cleanup, no flush
    server.wait(timeout=30)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=30)


def kill_in_flight(server: subprocess.Popen[bytes], flight: InFlight, delay: float) -> None:
    assert flight.sent.wait(60)
    time.sleep(delay)
    kill(server)
    flight.join()
    assert flight.status is None, "the operation finished before the kill: make it longer"


def count(database: Database, table: str) -> int:
    engine = create_engine(database.url or f"sqlite:///{database.home / 'tiers.db'}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())  # noqa: S608
    finally:
        engine.dispose()
