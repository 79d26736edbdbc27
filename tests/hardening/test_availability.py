"""Availability: with the database unreachable, /readyz fails and data endpoints answer 503;
once it is back, the same process recovers without a restart. The outage is real: the service
reaches PostgreSQL through a loopback TCP relay that the test cuts and restores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api import create_app
from tests.conftest import ACCESS, Database
from tests.relay import Relay
from tiers.admin import add_domain, initialise
from tiers.clients import add_client
from tiers.deployment import Deployment


@pytest.fixture
def relayed(database: Database) -> Iterator[tuple[Database, Relay]]:
    if database.backend != "postgresql" or database.url is None:
        pytest.skip("the outage is simulated between the service and PostgreSQL")
    url = make_url(database.url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    relayed_url = url.set(host="127.0.0.1", port=relay.port).render_as_string(False)
    yield Database("postgresql", database.home, relayed_url, database.schema), relay
    relay.cut()
    relay.listener.close()


def test_the_service_says_not_ready_while_the_database_is_down_and_recovers(
    relayed: tuple[Database, Relay],
) -> None:
    database, relay = relayed
    settings = database.settings(argon2_profile="test")
    initialise(settings, access=ACCESS)
    deployment = Deployment.open(settings)
    try:
        add_domain(deployment, access=ACCESS, name="casino", role="partner")
        token = add_client(
            deployment, access=ACCESS, name="casino-app", role="partner", domain="casino"
        ).token
    finally:
        deployment.close()
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": "availability"}
    body = {"kind": "card", "values": ["12345678"]}
    with TestClient(create_app(settings)) as http:
        assert 200 == http.post("/v1/pseudonymise", headers=headers, json=body).status_code
        relay.cut()
        assert 503 == http.get("/readyz").status_code
        down = http.post("/v1/pseudonymise", headers=headers, json=body)
        assert 503 == down.status_code and "error" in down.json()
        relay.restore()
        assert 200 == http.get("/readyz").status_code
        assert 200 == http.post("/v1/pseudonymise", headers=headers, json=body).status_code
