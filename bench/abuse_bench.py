"""What a flood of bad keys and slow uploads cost a legitimate client, in one run.

One service (SQLite, one worker, Argon2 at its production profile), and a legitimate partner
client on one connection making single-value pseudonymise calls, measured three times:

- ``idle``: nothing else (the reference of the ratios);
- ``flood``: 40 threads sending requests with keys that do not exist, each from an address of
  its own (127.0.0.2 to 127.0.0.41), so that the per-address limit does not stop them all at
  once and the verification pool is kept full;
- ``slow_uploads``: 4 threads each sending an exchange a few bytes at a time (below the
  minimum rate), again and again as the service cuts them off.

The target: the client's p50 under either load within 3 times its p50 idle.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.service_bench import _load, _serving, _tiers, partner_home

__all__ = ["abuse_costs"]

UNKNOWN = f"tiers_{'a' * 10}_{'A' * 43}"
FLOODERS = 40
SLOW_UPLOADERS = 4


def abuse_costs(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiers-bench-abuse-") as directory:
        env = {
            **os.environ,
            "TIERS_HOME": str(Path(directory) / "tiers"),
            "TIERS_ARGON2_PROFILE": "owasp",
            "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
            "TIERS_RATE_LIMIT_BURST": "1000000",
        }
        env.pop("TIERS_DATABASE_URL", None)
        token = partner_home(env)
        _tiers(env, "domain", "add", "hub", "--role", "hub")
        slow = _tiers(
            env, "client", "add", "casino-batch", "--role", "partner", "--domain", "casino"
        ).split()[-1]
        command = [str(Path(sys.executable).with_name("tiers")), "serve"]
        with _serving(command, env) as port:
            runs = {
                "idle": _measured(port, token, seconds, None),
                "flood": _measured(port, token, seconds, lambda stop: _flood(port, stop)),
                "slow_uploads": _measured(
                    port, token, seconds, lambda stop: _trickle(port, slow, stop)
                ),
            }
    idle = runs["idle"]["p50_ms"] or 1e-3
    return {
        **runs,
        "ratios": {
            f"p50_{name}_vs_idle": runs[name]["p50_ms"] / idle for name in ("flood", "slow_uploads")
        },
    }


def _measured(
    port: int,
    token: str,
    seconds: float,
    load: Callable[[threading.Event], list[threading.Thread]] | None,
) -> dict[str, Any]:
    """The client's figures while ``load`` runs (started a second before, to be under way)."""
    stop = threading.Event()
    threads = load(stop) if load is not None else []
    if threads:
        time.sleep(1.0)
    try:
        return _load(
            port,
            token,
            seconds,
            path="/v1/pseudonymise",
            body={"kind": "card", "values": ["10000001"]},
            connections=1,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def _flood(port: int, stop: threading.Event) -> list[threading.Thread]:
    def flooder(n: int) -> None:
        headers = {"Authorization": f"Bearer {UNKNOWN}"}
        while not stop.is_set():
            connection = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=30, source_address=(f"127.0.0.{n + 2}", 0)
            )
            try:
                connection.request("GET", "/v1/whoami", headers=headers)
                connection.getresponse().read()
            except OSError:
                time.sleep(0.01)
            finally:
                connection.close()

    return _started([threading.Thread(target=flooder, args=(n,)) for n in range(FLOODERS)])


def _trickle(port: int, token: str, stop: threading.Event) -> list[threading.Thread]:
    body = b"card,date,amount\n" + b"10000001,2026-11-01,1\n" * 2000
    head = (
        "POST /v1/exchanges?type=purchases HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nX-Purpose: benchmark\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    def uploader() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                    client.sendall(head)
                    for start in range(0, len(body), 16):
                        if stop.is_set():
                            return
                        client.sendall(body[start : start + 16])
                        time.sleep(0.05)  # 320 bytes a second
            except OSError:  # cut off by the service: start again
                time.sleep(0.05)

    return _started([threading.Thread(target=uploader) for _ in range(SLOW_UPLOADERS)])


def _started(threads: list[threading.Thread]) -> list[threading.Thread]:
    for thread in threads:
        thread.daemon = True
        thread.start()
    return threads
