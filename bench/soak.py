"""A bounded loopback soak: mixed traffic against a real `tiers serve` for a fixed time.

Reports requests per second, errors (target 0) and the server's resident memory over time
(target flat). Traffic goes to 127.0.0.1 only, and stops by itself.

    python -m bench.soak [--seconds 600] [--workers 4] [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.pg import fresh_schema


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (uvicorn's workers)."""
    total = rss_kib(pid)
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            total += tree_rss_kib(int(child))
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tiers(env: dict[str, str], *args: str) -> str:
    binary = str(Path(sys.executable).with_name("tiers"))
    return subprocess.run(  # noqa: S603 - our own CLI, arguments from this script
        [binary, *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def call(port: int, method: str, path: str, token: str, body: object = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": "soak"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600"))
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=None, help="default: 1 on SQLite, one per core otherwise"
    )
    parser.add_argument("--database-url", default=os.environ.get("TIERS_DATABASE_URL"))
    parser.add_argument("--output", type=Path, default=Path("bench/soak.json"))
    options = parser.parse_args()
    options.workers = options.workers or ((os.cpu_count() or 1) if options.database_url else 1)
    with (
        tempfile.TemporaryDirectory(prefix="tiers-soak-") as directory,
        fresh_schema(options.database_url) as url,
    ):
        env = {
            **os.environ,
            "TIERS_HOME": str(Path(directory) / "var"),
            "TIERS_ARGON2_PROFILE": "owasp",
            "TIERS_RATE_LIMIT_PER_SECOND": "100000",
            "TIERS_RATE_LIMIT_BURST": "100000",
        }
        if url:
            env["TIERS_DATABASE_URL"] = url
        return _soak(options, env)


def _soak(options: argparse.Namespace, env: dict[str, str]) -> int:  # noqa: PLR0915 - linear
    tiers(env, "init")
    for name in ("casino", "sncf"):
        tiers(env, "domain", "add", name, "--role", "partner")
    tiers(env, "domain", "add", "hub", "--role", "hub")
    partner = tiers(env, "client", "add", "casino-app", "--role", "partner", "--domain", "casino")
    auditor = tiers(env, "client", "add", "dpo", "--role", "auditor")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            str(Path(sys.executable).with_name("tiers")),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(options.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):
            try:
                if call(port, "GET", "/readyz", "") == 200:
                    break
            except OSError:
                time.sleep(0.2)
        counts = {"requests": 0, "errors": 0}
        lock = threading.Lock()
        stop = time.monotonic() + options.seconds

        def traffic(seed: int) -> None:
            rng = random.Random(seed)  # noqa: S311 - load shaping, not security
            while time.monotonic() < stop:
                pick = rng.random()
                value = f"{rng.randrange(10**7, 10**8)}"
                try:
                    if pick < 0.6:
                        status = call(
                            port,
                            "POST",
                            "/v1/pseudonymise",
                            partner,
                            {"kind": "card", "values": [value]},
                        )
                    elif pick < 0.8:
                        status = call(
                            port,
                            "POST",
                            "/v1/pseudonymise",
                            partner,
                            {
                                "kind": "card",
                                "values": [f"{rng.randrange(10**7, 10**8)}" for _ in range(500)],
                            },
                        )
                    elif pick < 0.9:
                        status = call(port, "GET", "/v1/whoami", partner)
                    else:
                        status = call(port, "GET", "/v1/audit/checkpoints", auditor)
                    failed = status >= 500
                except OSError:
                    failed = True
                with lock:
                    counts["requests"] += 1
                    counts["errors"] += failed

        threads = [threading.Thread(target=traffic, args=(n,)) for n in range(options.threads)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        memory = []
        while any(t.is_alive() for t in threads):
            memory.append(
                {"t": round(time.monotonic() - started, 1), "rss_kib": tree_rss_kib(server.pid)}
            )
            time.sleep(max(1.0, options.seconds / 60))
        elapsed = time.monotonic() - started
        # Growth is measured after warm-up (the first tenth): the first calls size the pools and
        # Argon2's 19 MiB per verification, which the allocator keeps.
        warm = next((m for m in memory if m["t"] >= elapsed / 10), memory[-1])
        first, last = warm["rss_kib"], memory[-1]["rss_kib"]
        # A plateau shows in the second half: each worker thread's and Argon2's buffers are
        # sized by the first requests that reach them, which can take minutes under load.
        half = next((m for m in memory if m["t"] >= elapsed / 2), memory[-1])["rss_kib"]
        result = {
            "seconds": round(elapsed, 1),
            "requests": counts["requests"],
            "requests_per_second": round(counts["requests"] / elapsed, 1),
            "errors": counts["errors"],
            "rss_kib_after_warmup": first,
            "rss_kib_last": last,
            "rss_growth_after_warmup": round((last - first) / max(first, 1), 3),
            "rss_growth_second_half": round((last - half) / max(half, 1), 3),
            "memory": memory,
            "database": "postgresql" if options.database_url else "sqlite",
            "workers": options.workers,
        }
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(json.dumps(result, indent=1))
        print(
            f"{result['requests']} requests in {result['seconds']} s "
            f"({result['requests_per_second']}/s), {result['errors']} errors, "
            f"RSS after warm-up {first} -> {last} KiB "
            f"({result['rss_growth_after_warmup']:+.1%}; second half "
            f"{result['rss_growth_second_half']:+.1%})"
        )
        return 1 if counts["errors"] else 0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
