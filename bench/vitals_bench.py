"""What the console and the metrics cost the API's single calls, in one run.

One service (SQLite, one worker) and a partner's client on one connection making single-value
pseudonymise calls, measured twice:

- ``idle``: nothing else (the reference of the ratios);
- ``observed``: at the same time, a Prometheus scraper reading ``/metrics`` four times a second
  (sixty times Prometheus's usual pace) and an auditor's browser loading a page of the
  console's access log twice a second.

The target: the client's requests per second under observation at least 0.9 of idle.
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.abuse_bench import _measured
from bench.service_bench import _serving, _tiers, partner_home

__all__ = ["vitals_costs"]


def vitals_costs(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiers-bench-vitals-") as directory:
        env = {
            **os.environ,
            "TIERS_HOME": str(Path(directory) / "tiers"),
            "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
            "TIERS_RATE_LIMIT_BURST": "1000000",
        }
        env.pop("TIERS_DATABASE_URL", None)
        token = partner_home(env)
        auditor = _tiers(env, "client", "add", "dpo", "--role", "auditor").split()[-1]
        command = [str(Path(sys.executable).with_name("tiers")), "serve"]
        with _serving(command, env) as port:
            runs = {
                "idle": _measured(port, token, seconds, None),
                "observed": _measured(
                    port, token, seconds, lambda stop: _observers(port, auditor, stop)
                ),
            }
    idle = runs["idle"]
    observed = runs["observed"]
    return {
        **runs,
        "ratios": {
            "single_observed_vs_idle": observed["requests_per_second"]
            / max(idle["requests_per_second"], 1e-9),
            "p50_observed_vs_idle": observed["p50_ms"] / (idle["p50_ms"] or 1e-3),
        },
    }


def _console_cookies(port: int, api_key: str) -> str:
    """Sign in to the console as a browser does; the Cookie header of the session."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/console/login")
    answer = connection.getresponse()
    answer.read()
    csrf = re.search(r"tiers_csrf=([^;]+)", answer.getheader("set-cookie") or "")
    assert csrf is not None
    body = urlencode({"api_key": api_key, "purpose": "bench", "csrftoken": csrf[1]})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"tiers_csrf={csrf[1]}",
    }
    connection.request("POST", "/console/login", body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    session = re.search(r"tiers_console=([^;]+)", answer.getheader("set-cookie") or "")
    assert session is not None, answer.status
    return f"tiers_csrf={csrf[1]}; tiers_console={session[1]}"


def _observers(port: int, auditor: str, stop: threading.Event) -> list[threading.Thread]:
    cookies = _console_cookies(port, auditor)

    def every(period: float, path: str, headers: dict[str, str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            connection.request("GET", path, headers=headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{path} answered {answer.status}")
            stop.wait(period)

    threads = [
        threading.Thread(target=every, args=(0.25, "/metrics", {}), daemon=True),
        threading.Thread(
            target=every, args=(0.5, "/console/log?limit=50", {"Cookie": cookies}), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    return threads
