"""A purpose on every access to data: every route is classified, and each one that reads or
writes data, links, deliveries, outputs or the log's entries refuses a call without a purpose
(400 ``purpose_required``), logged as denied under the caller's own name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from starlette.routing import BaseRoute

from api.gate import api_routes
from tests.api.conftest import Api
from tests.api.test_actions import UNLOGGED

UPLOAD = {"file": ("in.csv", b"card\n12345678\n", "text/csv")}
CSV = b"card,amount\n12345678,3\n"
NO_ID = "0123456789abcdef0123456789abcdef"

# route name -> (method, path, body, a client allowed to call it)
REQUIRED: dict[str, tuple[str, str, Any, str]] = {
    "pseudonymise": ("POST", "/v1/pseudonymise", {"kind": "card", "values": ["1"]}, "casino-app"),
    "tokenise_file": ("POST", "/v1/files?column=card=card", UPLOAD, "casino-app"),
    "file_part": ("PUT", f"/v1/files/{NO_ID}/parts/1", CSV, "casino-app"),
    "file_complete": ("POST", f"/v1/files/{NO_ID}/complete", {"parts": 1}, "casino-app"),
    "job_download": ("GET", f"/v1/jobs/{NO_ID}/output", None, "casino-app"),
    "job_rejects": ("GET", f"/v1/jobs/{NO_ID}/rejects", None, "casino-app"),
    "job_delete": ("DELETE", f"/v1/jobs/{NO_ID}", None, "casino-app"),
    "card_enrol": ("POST", "/v1/cards/enrol", {"values": ["12345678"]}, "casino-app"),
    "card_associate": (
        "POST",
        "/v1/cards/associate",
        {"card": "12345678", "other_domain": "sncf", "other_card": "87654321"},
        "casino-app",
    ),
    "card_dissociate": ("POST", "/v1/cards/dissociate", {"card": "12345678"}, "casino-app"),
    "card_show": (
        "GET",
        "/v1/cards/casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        None,
        "casino-app",
    ),
    "customer_transfer": ("POST", "/v1/customers/transfer", {"card": "12345678"}, "casino-app"),
    "customer_withdraw": ("POST", "/v1/customers/withdraw", {"card": "12345678"}, "casino-app"),
    "exchange_send": ("POST", "/v1/exchanges?type=purchases", CSV, "casino-app"),
    "blind_evaluate": (
        "POST",
        "/v1/blind/evaluate",
        {"elements": ["Nr4R8KFjjy8PscyJqXYx7Zq4QQWvb50A1GjYPnNHLhE"]},
        "casino-app",
    ),
    "blind_translate": (
        "POST",
        "/v1/blind/translate",
        {"pseudonyms": ["casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},
        "casino-app",
    ),
    "link_resolve": ("GET", "/v1/links/hub.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", None, "hub-app"),
    "link_resolve_batch": ("POST", "/v1/links/resolve", {"linking_keys": ["x"]}, "hub-app"),
    "campaign_send": ("POST", "/v1/campaigns", {"name": "c", "linking_keys": ["x"]}, "hub-app"),
    "inbox_read": ("GET", "/v1/inbox", None, "hub-app"),
    "inbox_get": ("GET", f"/v1/inbox/{NO_ID}", None, "casino-app"),
    "inbox_ack": ("POST", f"/v1/inbox/{NO_ID}/ack", None, "casino-app"),
    "audit_read": ("GET", "/v1/audit/entries", None, "dpo"),
    "audit_report": (
        "GET",
        "/v1/audit/report?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z",
        None,
        "dpo",
    ),
    "audit_alerts": ("GET", "/v1/audit/alerts", None, "dpo"),
    "audit_export": ("GET", "/v1/audit/export", None, "dpo"),
    "audit_proof": ("GET", "/v1/audit/proof?seq=0", None, "dpo"),
    "audit_subject": (
        "POST",
        "/v1/audit/subject",
        {"domain": "casino", "kind": "card", "value": "12345678"},
        "dpo",
    ),
}

# Routes that manage the service or prove the log's integrity without showing an entry: a
# purpose is recorded when given, never required.
OPTIONAL: dict[str, tuple[str, str, Any, str]] = {
    "whoami": ("GET", "/v1/whoami", None, "casino-app"),
    "job_read": ("GET", "/v1/jobs", None, "casino-app"),
    "job_status": ("GET", f"/v1/jobs/{NO_ID}", None, "casino-app"),
    "audit_verify": ("GET", "/v1/audit/verify", None, "dpo"),
    "audit_checkpoints": ("GET", "/v1/audit/checkpoints", None, "dpo"),
    "audit_checkpoint_read": ("GET", "/v1/audit/checkpoint", None, "dpo"),
    "domain_list": ("GET", "/v1/domains", None, "ops"),
    "domain_add": ("POST", "/v1/domains", {"name": "shop", "role": "partner"}, "ops"),
    "key_list": ("GET", "/v1/domains/casino/keys", None, "ops"),
    "blind_keys": ("GET", "/v1/blind/keys/casino", None, "casino-app"),
    "key_rotate": ("POST", "/v1/domains/sncf/keys/rotate", None, "ops"),
    "key_destroy": ("POST", "/v1/domains/casino/keys/9/destroy", None, "ops"),
    "client_list": ("GET", "/v1/clients", None, "ops"),
    "client_add": ("POST", "/v1/clients", {"name": "newbie", "role": "auditor"}, "ops"),
    "client_request_list": ("GET", "/v1/clients/requests", None, "ops"),
    "client_approve": ("POST", f"/v1/clients/requests/{NO_ID}/approve", None, "ops"),
    "client_revoke": ("POST", "/v1/clients/nobody/revoke", None, "ops"),
    "client_rotate_key": ("POST", "/v1/clients/nobody/rotate-key", None, "ops"),
}

PUBLIC = UNLOGGED  # no caller, no purpose


def send(api: Api, who: str, method: str, path: str, body: Any, purpose: str | None) -> Any:
    headers = api.headers(who, purpose=purpose)
    if body is UPLOAD:
        return api.http.request(method, path, headers=headers, files=UPLOAD)
    if isinstance(body, bytes):
        headers["Content-Type"] = "text/csv"
        return api.http.request(method, path, headers=headers, content=body)
    return api.http.request(method, path, headers=headers, json=body)


def route_names(routes: Sequence[BaseRoute]) -> set[str]:
    """Every API route's name, through the routers the app includes."""
    # the console's pages take their purpose from the session (tests/console)
    return {route.name for route in api_routes(routes) if not route.path.startswith("/console")}


def test_every_route_is_classified(api: Api) -> None:
    routes = route_names(api.http.app.routes)
    assert len(routes) > 30
    assert routes == set(REQUIRED) | set(OPTIONAL) | PUBLIC
    assert not set(REQUIRED) & set(OPTIONAL)


@pytest.mark.parametrize("route", sorted(REQUIRED))
def test_a_data_route_refuses_a_call_without_purpose(api: Api, route: str) -> None:
    method, path, body, who = REQUIRED[route]
    before = len(api.database.audit_entries())
    response = send(api, who, method, path, body, purpose=None)
    assert 400 == response.status_code, response.text
    assert "purpose_required" == response.json()["error"]["code"]
    entries = api.database.audit_entries()
    assert before + 1 == len(entries)
    entry = entries[-1]
    assert (who, "denied", "purpose_required", "unspecified") == (
        entry.actor,
        entry.outcome,
        entry.code,
        entry.purpose,
    )
    blank = send(api, who, method, path, body, purpose="   ")
    assert "purpose_required" == blank.json()["error"]["code"]


@pytest.mark.parametrize("route", sorted(REQUIRED))
def test_a_data_route_takes_a_stated_purpose(api: Api, route: str) -> None:
    method, path, body, who = REQUIRED[route]
    response = send(api, who, method, path, body, purpose="quarterly reconciliation")
    assert response.status_code != 400 or response.json()["error"]["code"] != "purpose_required"
    assert "quarterly reconciliation" == api.database.audit_entries()[-1].purpose


@pytest.mark.parametrize("route", sorted(OPTIONAL))
def test_a_management_route_records_no_purpose_as_unspecified(api: Api, route: str) -> None:
    method, path, body, who = OPTIONAL[route]
    response = send(api, who, method, path, body, purpose=None)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "purpose_required" != response.json()["error"]["code"]
    assert "unspecified" == api.database.audit_entries()[-1].purpose


def test_a_purpose_in_the_body_serves_as_well_as_the_header(api: Api) -> None:
    response = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app", purpose=None),
        json={"kind": "card", "values": ["12345678"], "purpose": "enrolment drive"},
    )
    assert 200 == response.status_code, response.text
    assert "enrolment drive" == api.database.audit_entries()[-1].purpose


def test_a_purpose_with_control_characters_is_refused_without_echo(api: Api) -> None:
    response = api.http.get("/v1/inbox", headers=api.headers("hub-app", purpose="audit\x1b[2Jwipe"))
    assert (400, "bad_purpose") == (response.status_code, response.json()["error"]["code"])
    assert "wipe" not in response.text
