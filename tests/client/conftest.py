"""A real ``tiers serve`` on 127.0.0.1 for the client's tests, with a client of each role."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def serve(database: Database, output: Path | None = None, **settings: str) -> Service:
    env = {**os.environ, **database.env(), "TIERS_ARGON2_PROFILE": "test", **settings}
    tiers("init", env=env)
    for name in ("casino", "sncf"):
        tiers("domain", "add", name, "--role", "partner", env=env)
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


@pytest.fixture
def service(database: Database) -> Iterator[Service]:
    yield serve(database)
    while STARTED:
        server = STARTED.pop()
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
