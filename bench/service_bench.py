"""The API under load, and look-ups as the alliance grows.

API: the real service (``tiers serve``, uvicorn on 127.0.0.1, the documented worker count: one
on SQLite, one per core on PostgreSQL) driven by ``bench/load.py`` in a separate process.
Scale: hub link resolution and campaign routing timed in process at growing customer counts,
over a population built by :mod:`bench.population`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import population
from tiers.auditing import Access
from tiers.campaigns import send_campaign
from tiers.deployment import Deployment
from tiers.resolution import resolve
from tiers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OPERATOR = Access("bench", "operator", "benchmark", datetime(2026, 11, 23, tzinfo=UTC))


def _tiers(env: dict[str, str], *args: str) -> str:
    binary = str(Path(sys.executable).with_name("tiers"))
    return subprocess.run(  # noqa: S603 - our own CLI
        [binary, *args], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def partner_home(env: dict[str, str]) -> str:
    """``tiers init`` in ``env``'s home, the casino's domain and its partner client: the
    client's key (the served benchmarks' common set-up)."""
    _tiers(env, "init")
    _tiers(env, "domain", "add", "casino", "--role", "partner")
    return _tiers(
        env, "client", "add", "casino-app", "--role", "partner", "--domain", "casino"
    ).split()[-1]


# A campaign is timed this many times and the median kept: timed once, right after the API
# section, routing at 100,000 customers took 124 and 136 µs a key in two full runs, and 58 and
# 60 µs alone.
CAMPAIGN_RUNS = 3


def scale(customers: int, database_url: str | None, lookups: int = 2000) -> dict[str, Any]:
    """Mean time of one hub link resolution, and median time per key of routing a 1000-key
    campaign (in a home removed afterwards: a million customers take 2 GB)."""
    with tempfile.TemporaryDirectory(prefix="tiers-bench-scale-") as directory:
        return _scale(Path(directory), customers, database_url, lookups)


def _scale(home: Path, customers: int, database_url: str | None, lookups: int) -> dict[str, Any]:
    settings = Settings(home=home, database_url=database_url, argon2_profile="test")
    started = time.perf_counter()
    keys = population.build(settings, customers, OPERATOR)
    built = time.perf_counter() - started
    deployment = Deployment.open(settings)
    hub = Access("hub-app", "hub", "benchmark", OPERATOR.now, domain="hub")
    try:
        population.check(deployment, hub, keys)
        sample = [keys[(n * 7919) % len(keys)] for n in range(min(lookups, len(keys)))]
        started = time.perf_counter()
        for key in sample:
            resolve(deployment, access=hub, linking_keys=[key], strict=True)
        resolution = (time.perf_counter() - started) / len(sample)
        campaign = sample[:1000]
        routings = []
        for run in range(CAMPAIGN_RUNS):
            started = time.perf_counter()
            send_campaign(deployment, access=hub, name=f"bench-{run}", linking_keys=campaign)
            routings.append((time.perf_counter() - started) / len(campaign))
        routing = statistics.median(routings)
    finally:
        deployment.close()
    return {
        "customers": customers,
        "build_seconds": round(built, 1),
        "resolve_ms": round(resolution * 1000, 3),
        "campaign_ms_per_key": round(routing * 1000, 3),
    }


def _ready(port: int, path: str = "/readyz") -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False


def _load(port: int, token: str, seconds: float, **request: Any) -> dict[str, Any]:
    body = request.pop("body", None)
    args = [
        sys.executable, "-m", "bench.load", "--port", str(port), "--token", token,
        "--seconds", str(seconds), "--method", request.get("method", "POST"),
        "--path", request["path"], "--connections", str(request.get("connections", 16)),
        "--fresh-cards", str(request.get("fresh_cards", 0)),
    ]  # fmt: skip
    if body is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(body, handle)
        args += ["--body", f"@{handle.name}"]
    output = subprocess.run(args, check=True, capture_output=True, text=True).stdout  # noqa: S603
    return json.loads(output)  # type: ignore[no-any-return]


def api(database_url: str | None, seconds: float, workers: int) -> dict[str, Any]:
    """Single-value pseudonymise, 10 000-value batches (the same values each time, and new
    values each time) and hub link resolution over HTTP (in a home removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="tiers-bench-api-") as directory:
        return _api(Path(directory), database_url, seconds, workers)


def reference(seconds: float, workers: int) -> dict[str, Any]:
    """The same single calls and batches against :mod:`bench.reference_service`: the framework
    and the cryptography without the database and the access log."""
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "TIERS_BENCH_REFERENCE_TOKEN": token}
    command = [
        sys.executable, "-m", "uvicorn", "bench.reference_service:app", "--no-access-log",
        "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    with _serving(command, env) as port:
        return {"workers": workers, **_pseudonymise_load(port, token, seconds, workers)}


@contextlib.contextmanager
def _serving(
    command: list[str], env: dict[str, str], *, ready: str = "/readyz", base: int = 18_000
) -> Iterator[int]:
    """Start ``command --port N`` on 127.0.0.1, wait until ``GET ready`` answers, stop it
    afterwards."""
    port = base + os.getpid() % 1000
    server = subprocess.Popen(  # noqa: S603 - our own CLI or uvicorn
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port, ready):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=60)


def batch_connections(workers: int) -> int:
    """Connections that send batches: two per worker. uvicorn's workers share one listening
    socket and whichever is awake takes the next connection, so two connections to two workers
    often both went to one, which then did all the work (the reference made 251,000 or 494,000
    identifiers/s from one run to the next, the two values only; with four, 492,000 to 494,000
    in each of four runs)."""
    return 2 * workers


def _pseudonymise_load(port: int, token: str, seconds: float, workers: int) -> dict[str, Any]:
    single = _load(
        port, token, seconds, path="/v1/pseudonymise", body={"kind": "card", "values": ["10000001"]}
    )
    batch = _load(
        port,
        token,
        seconds,
        path="/v1/pseudonymise",
        connections=batch_connections(workers),
        body={"kind": "card", "values": [str(20_000_000 + n) for n in range(10_000)]},
    )
    batch["identifiers_per_second"] = round(batch["requests_per_second"] * 10_000)
    return {"single": single, "batch_10000": batch}


def _api(home: Path, database_url: str | None, seconds: float, workers: int) -> dict[str, Any]:
    settings = Settings(home=home, database_url=database_url, argon2_profile="owasp")
    keys = population.build(settings, 200, OPERATOR)
    env = {
        **os.environ,
        "TIERS_HOME": str(home),
        "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
        "TIERS_RATE_LIMIT_BURST": "1000000",
        "TIERS_MAX_BATCH_VALUES": "100000",
    }
    if database_url:
        env["TIERS_DATABASE_URL"] = database_url
    partner = _tiers(env, "client", "add", "casino-app", "--role", "partner", "--domain", "casino")
    hub = _tiers(env, "client", "add", "hub-app", "--role", "hub", "--domain", "hub")
    command = [str(Path(sys.executable).with_name("tiers")), "serve", "--workers", str(workers)]
    with _serving(command, env) as port:
        calls = _pseudonymise_load(port, partner, seconds, workers)
        # The batches above repeat their values: after the first call each is known. New ones:
        fresh = _load(
            port,
            partner,
            seconds,
            path="/v1/pseudonymise",
            connections=batch_connections(workers),
            fresh_cards=10_000,
        )
        fresh["identifiers_per_second"] = round(fresh["requests_per_second"] * 10_000)
        links = _load(port, hub, seconds, method="GET", path=f"/v1/links/{keys[0]}")
    return {
        "workers": workers,
        **calls,
        "batch_10000_fresh": fresh,
        "link_resolve": links,
    }


def _partner(env: dict[str, str], name: str) -> str:
    return _tiers(env, "client", "add", f"{name}-{time.monotonic_ns()}", "--role", "partner",
                  "--domain", "casino")  # fmt: skip


def _quick(env: dict[str, str], in_thread: bool) -> dict[str, str]:
    """``env`` without rate limits, file jobs in the worker's thread when ``in_thread``."""
    env = {**env, "TIERS_RATE_LIMIT_PER_SECOND": "1000000", "TIERS_RATE_LIMIT_BURST": "1000000"}
    if in_thread:
        env["TIERS_FILE_JOB_PROCESS_BYTES"] = str(1 << 62)
    return env


def _send_file(port: int, key: str, path: Path, part_bytes: int | None) -> int:
    """A partner's file job through ``tiers-client`` (upload, wait, downloads), no registration;
    returns the rows it read."""
    from tiers_client import Client  # noqa: PLC0415 - the bench extra installs it

    with (
        tempfile.TemporaryDirectory() as out,
        Client(f"http://127.0.0.1:{port}", key, purpose="benchmark", timeout=3600) as tiers,
    ):
        result = tiers.tokenise_file(
            path, Path(out) / "out.csv", columns=["card=card", "email=email", "phone=phone"],
            keep=["date", "amount", "store"], register=False, part_bytes=part_bytes,
        )  # fmt: skip
    return result.job.rows_in


def file_job(
    path: Path, env: dict[str, str], *, part_bytes: int | None, in_thread: bool = False
) -> float:
    """Rows per second of a partner's file job through ``tiers serve`` (one worker, the
    home of ``env``), without registration, as a partner sees it with ``tiers-client``: upload
    (whole, or in parts of ``part_bytes``), wait, download the output and the rejects.
    ``in_thread`` runs it in the worker's thread, as every API file job ran before jobs had a
    process of their own (the reference of the change)."""
    env = _quick(env, in_thread)
    key = _partner(env, "files")
    with open(path, "rb") as handle:
        rows = sum(1 for _ in handle) - 1
    command = [str(Path(sys.executable).with_name("tiers")), "serve"]
    with _serving(command, env) as port:
        started = time.perf_counter()
        read = _send_file(port, key, path, part_bytes)
        elapsed = time.perf_counter() - started
    if read != rows:
        raise RuntimeError("the file job did not read the whole file")
    return rows / elapsed


def calls_beside_a_file_job(
    path: Path, env: dict[str, str], *, seconds: float = 8.0
) -> dict[str, dict[str, Any]]:
    """Single-value pseudonymise calls (4 connections, one worker) for ``seconds``: alone, then
    while a partner's file job runs in the worker's thread, then while one runs in its own
    process. Meant for a home on PostgreSQL: on SQLite a job holds the one writer wherever it
    runs, and the calls wait for it."""
    import threading  # noqa: PLC0415

    found: dict[str, dict[str, Any]] = {}
    body = {"kind": "card", "values": ["10000001"]}
    for label, in_thread in (("alone", True), ("in the thread", True), ("own process", False)):
        quick = _quick(env, in_thread)
        key, token = _partner(quick, "files"), _partner(quick, "calls")
        command = [str(Path(sys.executable).with_name("tiers")), "serve"]
        with _serving(command, quick, base=19_000) as port:
            job = threading.Thread(target=_send_file, args=(port, key, path, None))
            if label != "alone":
                job.start()
                time.sleep(1.0)  # the upload under way
            found[label] = _load(
                port, token, seconds, path="/v1/pseudonymise", body=body, connections=4
            )
            if label != "alone":
                job.join()
    return found
