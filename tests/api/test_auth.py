"""API keys: one answer for every bad credential, immediate revocation, rate limits."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import event

from api import create_app
from tests.api.conftest import Api
from tests.conftest import ACCESS, Cli
from tiers.clients import revoke_client, rotate_client_key
from tiers.deployment import Deployment


def whoami(api: Api, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = api.http.get("/v1/whoami", headers=headers)
    return response.status_code, response.json()


def test_unknown_revoked_malformed_and_missing_keys_get_the_same_answer(api: Api) -> None:
    good = api.tokens["casino-app"]
    prefix = good[len("tiers_") : len("tiers_") + 10]
    forged = f"tiers_{prefix}_{'A' * 43}"
    unknown = f"tiers_{'a' * 10}_{'A' * 43}"
    deployment = Deployment.open(api.database.settings())
    try:
        revoke_client(deployment, access=ACCESS, name="sncf-app")
    finally:
        deployment.close()
    answers = []
    for token in (forged, unknown, "nonsense", None, api.tokens["sncf-app"]):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = api.http.get("/v1/whoami", headers=headers)
        answers.append((response.status_code, response.text, response.headers["www-authenticate"]))
    assert [answers[0]] * 5 == answers
    assert 401 == answers[0][0] and '"unauthorised"' in answers[0][1]
    assert 200 == whoami(api, good)[0]


def test_revocation_and_rotation_take_effect_at_once_despite_the_cache(api: Api) -> None:
    old = api.tokens["casino-app"]
    assert 200 == whoami(api, old)[0]  # verified and now cached
    deployment = Deployment.open(api.database.settings(argon2_profile="test"))
    try:
        new = rotate_client_key(deployment, access=ACCESS, name="casino-app").token
        assert 401 == whoami(api, old)[0]
        assert 200 == whoami(api, new)[0]
        revoke_client(deployment, access=ACCESS, name="casino-app")
        assert 401 == whoami(api, new)[0]
    finally:
        deployment.close()


def test_rate_limited_requests_are_refused_and_logged(api: Api) -> None:
    settings = api.database.settings(
        argon2_profile="test", rate_limit_per_second=0.001, rate_limit_burst=3
    )
    with TestClient(create_app(settings)) as http:
        statuses = [
            http.get("/v1/whoami", headers=api.headers("casino-app")).status_code for _ in range(5)
        ]
        last = http.get("/v1/whoami", headers=api.headers("casino-app"))
    assert [200, 200, 200, 429, 429] == statuses
    assert "rate_limited" == last.json()["error"]["code"] and "Retry-After" in last.headers
    entry = api.database.audit_entries()[-1]
    assert ("casino-app", "denied", "rate_limited") == (entry.actor, entry.outcome, entry.code)


def test_keys_are_never_stored_or_listed(api: Api) -> None:
    stored = api.database.stored_bytes()
    for token in api.tokens.values():
        assert token.encode() not in stored
        secret = token[len("tiers_") + 11 :]  # after the prefix; base64url may hold "_"
        assert 43 == len(secret) and secret.encode() not in stored
    listing = api.http.get("/v1/clients", headers=api.headers("ops")).text
    assert all(token not in listing for token in api.tokens.values())
    assert "key_hash" not in listing and "argon2" not in listing


def test_cli_prints_a_new_key_once(cli: Cli) -> None:
    cli.ok("init")
    cli.ok("domain", "add", "casino", "--role", "partner")
    added = cli(
        "client",
        "add",
        "casino-app",
        "--role",
        "partner",
        "--domain",
        "casino",
        TIERS_ARGON2_PROFILE="test",
    )
    assert 0 == added.exit_code, added.stderr
    token = added.stdout.strip()
    assert token.startswith("tiers_") and "shown once" in added.stderr
    listing = cli.ok("client", "list").stdout
    assert "casino-app" in listing and token not in listing
    refused = cli("client", "add", "hub-app", "--role", "hub")
    assert 1 == refused.exit_code and "[domain_required]" in refused.stderr
    rotated = cli("client", "rotate-key", "casino-app", TIERS_ARGON2_PROFILE="test")
    assert rotated.stdout.strip() != token
    assert 0 == cli("client", "revoke", "casino-app").exit_code
    assert "revoked" in cli.ok("client", "list").stdout


def test_cached_keys_are_checked_together_each_against_its_own_row(api: Api) -> None:
    """The requests that wait together have their cached keys checked in one read of the
    clients' rows; a key revoked since it was cached is refused, the others are not."""
    names = ["casino-app", "sncf-app", "hub-app"]
    for name in names:
        assert 200 == whoami(api, api.tokens[name])[0]  # verified and now cached
    service = api.http.app.state.service  # type: ignore[attr-defined]
    deployment = Deployment.open(api.database.settings(argon2_profile="test"))
    try:
        revoke_client(deployment, access=ACCESS, name="sncf-app")
    finally:
        deployment.close()
    reads: list[str] = []
    engine = service.deployment().engine
    listener = lambda *args: reads.append(args[2])  # noqa: E731 - (conn, cursor, statement, …)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        tokens = [*(api.tokens[name] for name in names), None, "nonsense", api.tokens["hub-app"]]
        records = service.authenticator().cached_many(tokens)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert [r.name if r else None for r in records] == [
        "casino-app", None, "hub-app", None, None, "hub-app"
    ]  # fmt: skip
    assert len([s for s in reads if "FROM clients" in s]) == 1
    assert 401 == whoami(api, api.tokens["sncf-app"])[0]


def test_a_revocation_answers_with_the_client_as_it_now_is(api: Api) -> None:
    reply = api.http.post("/v1/clients/sncf-app/revoke", headers=api.headers("ops"))
    assert 200 == reply.status_code
    assert (False, True) == (reply.json()["active"], reply.json()["revoked_at"] is not None)
