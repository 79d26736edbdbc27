"""Four eyes on who may hold keys: over the API a client is created or re-keyed only when a
second admin approves; the requester never can; requests expire; the operator acts directly
and is logged as such; every creation, approval and revocation raises an alert of its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from errors import Forbidden, StateConflict
from tests.api.conftest import Api
from tests.conftest import ACCESS, Cli
from tiers.alerts import Thresholds, find_alerts
from tiers.approvals import approve_request, request_client
from tiers.clients import add_client, rotate_client_key
from tiers.deployment import Deployment


def second_admin(api: Api) -> str:
    deployment = Deployment.open(api.database.settings())
    try:
        return add_client(deployment, access=ACCESS, name="ops2", role="admin").token
    finally:
        deployment.close()


def ask(api: Api, body: dict[str, str]) -> dict[str, object]:
    response = api.http.post("/v1/clients", headers=api.headers("ops"), json=body)
    assert 202 == response.status_code, response.text
    reply: dict[str, object] = response.json()
    return reply


def test_a_partner_client_needs_a_second_admin(api: Api) -> None:
    request = ask(api, {"name": "casino-pos", "role": "partner", "domain": "casino"})
    assert ("pending", "ops", "casino-pos") == (
        request["state"],
        request["requested_by"],
        request["name"],
    )
    assert "api_key" not in request
    assert "casino-pos" not in [
        c["name"] for c in api.http.get("/v1/clients", headers=api.headers("ops")).json()
    ]
    approve = f"/v1/clients/requests/{request['id']}/approve"
    own = api.http.post(approve, headers=api.headers("ops"))
    assert (403, "self_approval") == (own.status_code, own.json()["error"]["code"])
    token = second_admin(api)
    approved = api.http.post(approve, headers={"Authorization": f"Bearer {token}"})
    assert 200 == approved.status_code, approved.text
    key = approved.json()["api_key"]
    me = api.http.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"}).json()
    assert ("casino-pos", "partner", "casino") == (me["name"], me["role"], me["domain"])
    again = api.http.post(approve, headers={"Authorization": f"Bearer {token}"})
    assert (409, "request_decided") == (again.status_code, again.json()["error"]["code"])
    entries = [e for e in api.database.audit_entries() if e.action == "client_approve"]
    assert [("ops2", "ok", "ops")] == [
        (e.actor, e.outcome, e.detail["requested_by"]) for e in entries if e.outcome == "ok"
    ]


def test_every_client_and_every_new_key_is_asked_for(api: Api) -> None:
    for role in ("hub", "auditor", "admin"):
        body = {"name": f"new-{role}", "role": role}
        if role == "hub":
            body["domain"] = "hub"
        assert "pending" == ask(api, body)["state"]
    rekey = api.http.post("/v1/clients/casino-app/rotate-key", headers=api.headers("ops"))
    assert 202 == rekey.status_code and "api_key" not in rekey.json()
    pending = api.http.post("/v1/clients/casino-app/rotate-key", headers=api.headers("ops"))
    assert (409, "request_pending") == (pending.status_code, pending.json()["error"]["code"])
    assert 200 == api.http.get("/v1/whoami", headers=api.headers("casino-app")).status_code
    token = second_admin(api)
    approved = api.http.post(
        f"/v1/clients/requests/{rekey.json()['id']}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert 200 == approved.status_code
    assert 401 == api.http.get("/v1/whoami", headers=api.headers("casino-app")).status_code
    fresh = {"Authorization": f"Bearer {approved.json()['api_key']}"}
    assert "casino-app" == api.http.get("/v1/whoami", headers=fresh).json()["name"]


def test_a_request_expires(api: Api) -> None:
    request = ask(api, {"name": "late", "role": "auditor"})
    deployment = Deployment.open(api.database.settings())
    try:
        month_later = replace(ACCESS, now=datetime.now(UTC) + timedelta(days=30))
        with pytest.raises(StateConflict) as expired:
            approve_request(deployment, access=month_later, request_id=str(request["id"]))
        assert "request_expired" == expired.value.code
        # an expired request no longer stands in the way of a new one
        admin = replace(month_later, actor="ops", role="admin", client_id=5)
        again = request_client(deployment, access=admin, kind="add", name="late", role="auditor")
        assert "pending" == again.state
    finally:
        deployment.close()
    listed = api.http.get("/v1/clients/requests", headers=api.headers("ops")).json()
    # listed now: the first expires in a day, not yet; the second was asked for a month ahead
    assert ["pending", "pending"] == [r["state"] for r in listed]


def test_the_operator_approves_on_the_host_and_creations_raise_alerts(api: Api, cli: Cli) -> None:
    request = ask(api, {"name": "sncf-bo", "role": "partner", "domain": "sncf"})
    approved = cli("client", "approve", str(request["id"]))
    assert 0 == approved.exit_code, approved.stderr
    assert approved.stdout.strip().startswith("tiers_")
    revoked = api.http.post("/v1/clients/sncf-bo/revoke", headers=api.headers("ops"))
    assert 200 == revoked.status_code
    deployment = Deployment.open(api.database.settings())
    try:
        moment = api.database.audit_entries()[-1].time + timedelta(minutes=1)
        later = replace(ACCESS, actor="dpo", role="auditor", now=moment)
        found = find_alerts(deployment, access=later, thresholds=Thresholds(10**6, 100, 10))
    finally:
        deployment.close()
    kinds = {(a.kind, a.actor.split(":")[0]) for a in found}
    assert {
        ("client_requested", "ops"),
        ("client_approved", "operator"),
        ("client_revoked", "ops"),
    } <= kinds


def test_an_admin_client_cannot_create_or_rekey_directly(api: Api) -> None:
    deployment = Deployment.open(api.database.settings())
    admin = replace(ACCESS, actor="ops", role="admin", client_id=5)
    try:
        with pytest.raises(Forbidden) as direct:
            add_client(deployment, access=admin, name="mine", role="partner", domain="casino")
        assert "approval_required" == direct.value.code
        with pytest.raises(Forbidden):
            rotate_client_key(deployment, access=admin, name="casino-app")
    finally:
        deployment.close()
