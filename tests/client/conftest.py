"""A real ``tiers serve`` on 127.0.0.1 for the client's tests, with a client of each role."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.hardening.service import STARTED, free_port, start, tiers


@dataclass(frozen=True)
class Service:
    url: str
    keys: dict[str, str]
    env: dict[str, str]


def serve(
    database: Database,
    output: Path | None = None,
    *,
    init: Sequence[str] = (),
    blind_only: Sequence[str] = (),
    **settings: str,
) -> Service:
    """The service started on a free port, ``init`` given to ``tiers init`` (``--scheme oprf``,
    say), the partners of ``blind_only`` made blind-only."""
    env = {**os.environ, **database.env(), "TIERS_ARGON2_PROFILE": "test", **settings}
    tiers("init", *init, env=env)
    for name in ("casino", "sncf"):
        only = ["--blind-only"] if name in blind_only else []
        tiers("domain", "add", name, "--role", "partner", *only, env=env)
    tiers("domain", "add", "hub", "--role", "hub", env=env)
    keys = {
        name: tiers("client", "add", name, *options, env=env).strip()
        for name, options in {
            "casino-app": ["--role", "partner", "--domain", "casino"],
            "sncf-app": ["--role", "partner", "--domain", "sncf"],
            "hub-app": ["--role", "hub", "--domain", "hub"],
            "dpo": ["--role", "auditor"],
        }.items()
    }
    port = free_port()
    start(env, port, output)
    return Service(f"http://127.0.0.1:{port}", keys, env)


def stop_started() -> None:
    """Stop every server the test started."""
    while STARTED:
        server = STARTED.pop()
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


@pytest.fixture
def service(database: Database) -> Iterator[Service]:
    yield serve(database)
    stop_started()
