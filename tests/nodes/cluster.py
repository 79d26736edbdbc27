"""Several real ``tiers serve`` nodes on one PostgreSQL, behind a real nginx.

Each node has a home, a temporary folder (where its file jobs' sockets are) and a port of its
own, as a host of its own would; they share the database, the master key (its file, or the
suite's SoftHSM2 token) and the checkpoint store's folder (a shared file system in
production). nginx (Debian's package) balances them round robin and logs which node served
each request, so that a test can show where a request went.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.hardening.service import free_port

TIERS = str(Path(sys.executable).with_name("tiers"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    return Path(NGINX).exists()


@dataclass
class Node:
    name: str
    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    database: Database
    root: Path
    nodes: list[Node] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    port: int = 0
    temporary: list[Path] = field(default_factory=list)

    def base_env(self) -> dict[str, str]:
        """What every node and command shares: the database, the master key, the checkpoint
        store, and settings that keep a test short."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERS_")}
        env.update(self.database.env())
        env.update(
            TIERS_CHECKPOINT_DIR=str(self.database.home / "checkpoints"),
            TIERS_ARGON2_PROFILE="test",
            TIERS_AUDIT_CHECKPOINT_SECONDS="0.5",
            TIERS_JOB_STALE_SECONDS="10",
        )
        return env

    def master_key_env(self) -> dict[str, str]:
        """How a node reaches the deployment's master key: the first home's file (made by
        ``tiers init``) or the suite's token (already in :meth:`base_env`)."""
        if self.database.hsm_key is not None:
            return {}
        return {"TIERS_MASTER_KEY_FILE": str(self.database.home / "master.key")}

    def tiers(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command of the operator's, on the shared deployment (from the first home)."""
        env = {**self.base_env(), "TIERS_HOME": str(self.database.home)}
        done = subprocess.run([TIERS, *args], env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"tiers {args[0]} failed: {done.stderr}")
        return done

    def add_node(self) -> Node:
        index = len(self.nodes) + 1
        home = self.root / f"node-{index}"
        home.mkdir(parents=True, mode=0o700)
        # Its own temporary folder, as another host's: short, for the runners' Unix sockets.
        temporary = Path(tempfile.mkdtemp(prefix="tiers-node-"))
        self.temporary.append(temporary)
        env = {
            **self.base_env(),
            **self.master_key_env(),
            "TIERS_HOME": str(home),
            "TIERS_NODE_NAME": f"node-{index}",
            "TMPDIR": str(temporary),
        }
        node = Node(f"node-{index}", home, free_port(), env)
        self.nodes.append(node)
        return node

    def launch(self, node: Node) -> None:
        """Start the node's ``tiers serve``, its output in its home's ``server.log``."""
        with (node.home / "server.log").open("ab") as log:
            node.process = subprocess.Popen(
                [TIERS, "serve", "--port", str(node.port)],
                env=node.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self, node: Node) -> None:
        """Launch the node and wait until it is ready."""
        self.launch(node)
        assert node.process is not None
        deadline = time.monotonic() + 60
        while status(node.port, "/readyz") != 200:
            if node.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{node.name} did not start: {(node.home / 'server.log').read_text()}")
            time.sleep(0.2)

    def kill(self, node: Node) -> None:
        """SIGKILL, as a host that dies: no handler, no clean-up."""
        assert node.process is not None
        node.process.kill()
        node.process.wait(timeout=30)

    def stop(self, node: Node) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=30)

    def start_nginx(self, nodes: list[Node]) -> None:
        folder = self.root / "nginx"
        folder.mkdir(exist_ok=True)
        self.port = free_port()
        servers = "\n".join(
            f"        server {n.address} max_fails=1 fail_timeout=5s;" for n in nodes
        )
        user = "user root root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {folder}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"""daemon off;
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format served '$request_method $uri $status $upstream_addr';
    access_log {folder}/access.log served;
{temp}
    client_max_body_size 0;
    upstream tiers {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://tiers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 300s;
        }}
    }}
}}
""",
            encoding="utf-8",
        )
        self.nginx = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + 30
        while status(self.port, "/healthz") != 200:
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {(folder / 'error.log').read_text()}")
            time.sleep(0.1)

    def served(self, path_pattern: str) -> list[tuple[str, int, str]]:
        """(method, status, node name) of each request nginx passed on whose path matches."""
        by_address = {n.address: n.name for n in self.nodes}
        found = []
        for line in (self.root / "nginx" / "access.log").read_text().splitlines():
            method, uri, code, upstream = line.split(" ", 3)
            if re.fullmatch(path_pattern, uri):
                last = upstream.split(", ")[-1]  # a request retried names every node tried
                found.append((method, int(code), by_address.get(last, last)))
        return found

    def nginx_errors(self) -> str:
        """nginx's error log: why it passed a node over (a failure marks it down for 5 s)."""
        log = self.root / "nginx" / "error.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""

    def close(self) -> None:
        for node in self.nodes:
            self.stop(node)
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(timeout=30)
        for folder in self.temporary:
            shutil.rmtree(folder, ignore_errors=True)


def status(port: int, path: str) -> int:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return 0
