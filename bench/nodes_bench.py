"""Several nodes behind nginx, and the access log's ceiling (PostgreSQL).

``nodes``: the same single calls and 10,000-value batches as the API section, through nginx
(Debian's package, round robin) in front of 1, 2 and 3 ``tiers serve`` nodes (one worker
each, a home and a temporary folder each) on one PostgreSQL schema, with the load from a
separate process. Every node runs on this machine: on two cores the ratios between node
counts say what adding a node costs or gives here, not what a cluster of hosts would carry
(docs/performance.md projects that from the per-node figures).

``sequencer``: entries appended to the access log per second, each in a transaction of its
own, by 1 to 16 threads in one process (the log's head is one row locked by every append: the
deployment's ceiling of logged operations, whatever the number of nodes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from audit import Action
from bench.service_bench import _load, _ready, batch_connections, partner_home
from tiers.deployment import Deployment
from tiers.settings import Settings

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TIERS = str(Path(sys.executable).with_name("tiers"))


def available() -> bool:
    return Path(NGINX).exists()


def nodes(database_url: str, seconds: float, counts: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    """Single calls and batches through nginx with each number of nodes in ``counts``."""
    with tempfile.TemporaryDirectory(prefix="tiers-bench-nodes-") as directory:
        root = Path(directory)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TIERS_")},
            "TIERS_HOME": str(root / "first"),
            "TIERS_DATABASE_URL": database_url,
            "TIERS_CHECKPOINT_DIR": str(root / "checkpoints"),
            "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
            "TIERS_RATE_LIMIT_BURST": "1000000",
            "TIERS_BUDGET_IDENTIFIERS_PER_SECOND": "1000000000",
            "TIERS_BUDGET_IDENTIFIERS_PER_HOUR": "1000000000000",
            "TIERS_MAX_BATCH_VALUES": "100000",
        }
        token = partner_home(env)
        env["TIERS_MASTER_KEY_FILE"] = str(root / "first" / "master.key")
        runs = {}
        for count in counts:
            with _cluster(root / f"run-{count}", env, count) as port:
                single = _load(port, token, seconds, path="/v1/pseudonymise",
                               body={"kind": "card", "values": ["10000001"]})  # fmt: skip
                batch = _load(
                    port, token, seconds, path="/v1/pseudonymise",
                    connections=batch_connections(count),
                    body={"kind": "card", "values": [str(20_000_000 + n) for n in range(10_000)]},
                )  # fmt: skip
                batch["identifiers_per_second"] = round(batch["requests_per_second"] * 10_000)
                runs[str(count)] = {"single": single, "batch_10000": batch}
        return runs


@contextlib.contextmanager
def _cluster(root: Path, env: dict[str, str], count: int) -> Iterator[int]:
    """``count`` nodes and nginx in front; yields nginx's port."""
    root.mkdir()
    servers: list[subprocess.Popen[bytes]] = []
    base = 19_000 + (os.getpid() % 200) * 5
    try:
        for index in range(count):
            home = root / f"node-{index}"
            home.mkdir()
            temporary = Path(tempfile.mkdtemp(prefix="tiers-bn-"))
            node_env = {**env, "TIERS_HOME": str(home), "TMPDIR": str(temporary),
                        "TIERS_NODE_NAME": f"node-{index}"}  # fmt: skip
            servers.append(
                subprocess.Popen(  # noqa: S603 - our own CLI
                    [TIERS, "serve", "--port", str(base + index)],
                    env=node_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for index in range(count):
            _wait(lambda i=index: _ready(base + i))
        port = base + 4
        config = root / "nginx.conf"
        config.write_text(_nginx_config(root, port, [base + i for i in range(count)]))
        servers.append(
            subprocess.Popen(  # noqa: S603 - Debian's nginx, our configuration
                [NGINX, "-p", str(root), "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait(lambda: _ready(port, "/healthz"))
        yield port
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)


def _wait(ready: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError("a node or nginx did not start")
        time.sleep(0.2)


def _nginx_config(root: Path, port: int, upstreams: list[int]) -> str:
    servers = "".join(f"server 127.0.0.1:{p};" for p in upstreams)
    user = "user root root;" if os.geteuid() == 0 else ""
    temp = "".join(f"{kind}_temp_path {root}/{kind};" for kind in ("client_body", "proxy"))
    return (
        f"daemon off; {user} worker_processes 1; pid {root}/nginx.pid;"
        f"error_log {root}/error.log warn; events {{ worker_connections 1024; }}"
        f"http {{ access_log off; {temp} client_max_body_size 0;"
        f"upstream tiers {{ {servers} keepalive 64; }}"
        f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://tiers;"
        'proxy_http_version 1.1; proxy_set_header Connection "";'
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } } }"
    )


def sequencer(
    database_url: str, seconds: float, threads: tuple[int, ...] = (1, 4, 16)
) -> dict[str, Any]:
    """Entries appended per second, one transaction each, by each number of ``threads``."""
    from bench.service_bench import OPERATOR  # noqa: PLC0415 - the benchmarks' operator

    with tempfile.TemporaryDirectory(prefix="tiers-bench-log-") as directory:
        env = {"TIERS_HOME": directory, "TIERS_DATABASE_URL": database_url}
        partner_home({**os.environ, **env})
        settings = Settings(home=Path(directory), database_url=database_url)
        deployment = Deployment.open(settings)
        deployment.checkpoint_due = lambda: None  # signing is not what is measured
        access = replace(OPERATOR, purpose="benchmark")
        results = {}
        try:
            for count in threads:
                results[str(count)] = round(_appends(deployment, access, count, seconds))
        finally:
            deployment.close()
        return results


def _appends(deployment: Deployment, access: Any, threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def append(index: int) -> None:
        while time.monotonic() < stop:
            with deployment.transaction() as connection:
                deployment.record(connection, access, action=Action.WHOAMI)
            done[index] += 1

    workers = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)
