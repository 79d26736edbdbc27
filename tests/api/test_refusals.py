"""Every refusal traced, at the door and behind it, without a flood flooding the log: revoked
keys named as their client, anonymous refusals counted per address and minute, bad bodies
logged under the client who sent them, and key verifications limited per address."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api import create_app
from tests.api.conftest import Api
from tests.conftest import ACCESS
from tests.forgery import engine_of
from tiers.clients import revoke_client
from tiers.deployment import Deployment

UNKNOWN = f"tiers_{'a' * 10}_{'A' * 43}"


def service(api: Api, **settings: object) -> TestClient:
    return TestClient(
        create_app(
            api.database.settings(
                argon2_profile="test",
                rate_limit_per_second=1000.0,
                rate_limit_burst=1000,
                **settings,
            )
        )
    )


def test_a_revoked_key_is_named_as_its_client(api: Api) -> None:
    deployment = Deployment.open(api.database.settings())
    try:
        revoke_client(deployment, access=ACCESS, name="sncf-app")
    finally:
        deployment.close()
    response = api.http.get("/v1/whoami", headers=api.headers("sncf-app"))
    assert (401, "unauthorised") == (response.status_code, response.json()["error"]["code"])
    entry = api.database.audit_entries()[-1]
    assert ("sncf-app", "denied", "revoked_key", "whoami") == (
        entry.actor,
        entry.outcome,
        entry.code,
        entry.action,
    )
    assert api.tokens["sncf-app"][:16] == entry.detail["key_prefix"]


def _clear_of_a_minute_boundary(margin: float = 10.0) -> None:
    """Wait, if needed, so that the next ``margin`` seconds fall within one minute of the
    clock: refusals are counted per minute, and five of them straddling two minutes are two
    counts (as they should be), not the one this test expects."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.1)


def test_anonymous_refusals_are_counted_per_address_and_minute(api: Api) -> None:
    _clear_of_a_minute_boundary()
    before = len(api.database.audit_entries())
    with service(api) as http:
        for _ in range(5):
            assert (
                401
                == http.get(
                    "/v1/whoami", headers={"Authorization": f"Bearer {UNKNOWN}"}
                ).status_code
            )
        written = api.database.audit_entries()[before:]
        assert 1 == len(written)  # the first of the minute, at once
    entries = api.database.audit_entries()[before:]  # the rest, when the minute or service ends
    assert [1, 4] == [e.detail["count"] for e in entries]
    for entry in entries:
        assert ("anonymous", "denied", "unauthorised") == (entry.actor, entry.outcome, entry.code)
        assert ("testclient", "tiers_aaaaaaaaaa") == (
            entry.detail["address"],
            entry.detail["key_prefix"],
        )
    assert UNKNOWN not in str(api.database.stored_bytes())


def test_a_malformed_body_is_logged_under_its_sender(api: Api) -> None:
    response = api.http.post(
        "/v1/pseudonymise",
        headers={**api.headers("casino-app"), "Content-Type": "application/json"},
        content=b'{"kind": "card", "values": [',
    )
    assert 422 == response.status_code
    entry = api.database.audit_entries()[-1]
    assert ("casino-app", "pseudonymise", "invalid_request") == (
        entry.actor,
        entry.action,
        entry.code,
    )


@pytest.fixture
def small(api: Api) -> Iterator[TestClient]:
    """A service whose JSON bodies are at most 1 KiB."""
    with service(api, max_json_body_bytes=1024) as http:
        yield http


def chunks(size: int) -> Iterator[bytes]:
    yield b'{"kind": "card", "values": ["'
    yield b"1" * size
    yield b'"]}'


def test_a_chunked_body_over_the_limit_gets_413_under_its_sender(
    api: Api, small: TestClient
) -> None:
    response = small.post(
        "/v1/pseudonymise",
        headers={**api.headers("casino-app"), "Content-Type": "application/json"},
        content=chunks(4096),
    )
    assert (413, "too_large") == (response.status_code, response.json()["error"]["code"])
    entry = api.database.audit_entries()[-1]
    assert ("casino-app", "pseudonymise", "denied", "too_large") == (
        entry.actor,
        entry.action,
        entry.outcome,
        entry.code,
    )
    fits = small.post(
        "/v1/pseudonymise",
        headers={**api.headers("casino-app"), "Content-Type": "application/json"},
        content=chunks(8),
    )
    assert 200 == fits.status_code, fits.text


def test_an_anonymous_body_is_never_read(api: Api, small: TestClient) -> None:
    response = small.post(
        "/v1/pseudonymise",
        headers={"Authorization": f"Bearer {UNKNOWN}", "Content-Type": "application/json"},
        content=chunks(10 * 1024 * 1024),
    )
    assert 401 == response.status_code  # not 413: refused at the door, before the body


def test_key_verifications_are_limited_per_address(api: Api) -> None:
    with service(
        api, address_verifications_per_second=0.001, address_verifications_burst=3
    ) as http:
        good = http.get("/v1/whoami", headers=api.headers("casino-app"))
        assert 200 == good.status_code  # one verification; the key is cached from now on
        statuses = [
            http.get("/v1/whoami", headers={"Authorization": f"Bearer {UNKNOWN}"}).status_code
            for _ in range(4)
        ]
        assert [401, 401, 429, 429] == statuses
        refused = http.get("/v1/whoami", headers={"Authorization": f"Bearer {UNKNOWN}"})
        assert (
            "rate_limited" == refused.json()["error"]["code"] and "Retry-After" in refused.headers
        )
        # a client whose key is verified is not held back by the flood of its address
        assert 200 == http.get("/v1/whoami", headers=api.headers("casino-app")).status_code
    codes = [e.code for e in api.database.audit_entries() if e.actor == "anonymous"]
    assert {"unauthorised", "rate_limited"} == set(codes)


def test_a_chunked_upload_over_the_limit_gets_413_and_one_entry(api: Api) -> None:
    def rows() -> Iterator[bytes]:
        yield b"card,date,amount\n"
        for _ in range(100):
            yield b"10000001,2026-11-01,1\n" * 10

    before = len(api.database.audit_entries())
    with service(api, max_upload_bytes=4096) as http:
        response = http.post(
            "/v1/exchanges?type=purchases",
            headers={**api.headers("casino-app"), "Content-Type": "text/csv"},
            content=rows(),
        )
    assert (413, "too_large") == (response.status_code, response.json()["error"]["code"])
    written = [(e.actor, e.action, e.code) for e in api.database.audit_entries()[before:]]
    assert [("casino-app", "exchange_send", "too_large")] == written
    inbox = api.http.get("/v1/inbox", headers=api.headers("hub-app")).json()
    assert [] == inbox  # nothing delivered


def test_a_client_row_changed_outside_the_service_is_refused_at_the_door(api: Api) -> None:
    assert 200 == api.http.get("/v1/whoami", headers=api.headers("casino-app")).status_code
    engine = engine_of(api.database)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE clients SET role = 'admin' WHERE name = 'casino-app'"))
    finally:
        engine.dispose()
    response = api.http.get("/v1/clients", headers=api.headers("casino-app"))
    assert (403, "row_tampered") == (response.status_code, response.json()["error"]["code"])
    entry = api.database.audit_entries()[-1]
    assert ("client_list", "denied", "row_tampered") == (entry.action, entry.outcome, entry.code)
