"""An API under test: the real app (FastAPI TestClient) over a real database, with one client
of each role. Argon2 uses its cheapest profile so that the suite stays fast."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api import create_app
from tests.conftest import ACCESS, Database
from tiers.admin import add_domain, initialise
from tiers.clients import add_client
from tiers.deployment import Deployment

CLIENTS = {
    "casino-app": ("partner", "casino"),
    "sncf-app": ("partner", "sncf"),
    "hub-app": ("hub", "hub"),
    "dpo": ("auditor", None),
    "ops": ("admin", None),
}


@dataclass
class Api:
    http: TestClient
    tokens: dict[str, str]
    database: Database

    def headers(self, name: str, purpose: str | None = "test") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        if purpose is not None:
            headers["X-Purpose"] = purpose
        return headers


@pytest.fixture
def api(database: Database) -> Iterator[Api]:
    with api_of(database) as made:
        yield made


@contextmanager
def api_of(database: Database, **overrides: object) -> Iterator[Api]:
    """The API over ``database``, its settings changed by ``overrides``."""
    settings = database.settings(
        **{
            "argon2_profile": "test",
            "rate_limit_per_second": 1000.0,
            "rate_limit_burst": 1000,
            **overrides,
        }
    )
    initialise(settings, access=ACCESS)
    deployment = Deployment.open(settings)
    tokens = {}
    try:
        for name, role in (("casino", "partner"), ("sncf", "partner"), ("hub", "hub")):
            add_domain(deployment, access=ACCESS, name=name, role=role)
        for name, (role, domain) in CLIENTS.items():
            tokens[name] = add_client(
                deployment, access=ACCESS, name=name, role=role, domain=domain
            ).token
    finally:
        deployment.close()
    with TestClient(create_app(settings)) as http:
        yield Api(http, tokens, database)
