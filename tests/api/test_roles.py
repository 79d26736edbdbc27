"""The full role x endpoint matrix: allowed or refused as specified, each call logged once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

ALL = {"casino-app", "hub-app", "dpo", "ops"}
UPLOAD = {"file": ("in.csv", b"card\n12345678\n", "text/csv")}

# (name, method, path, json body or None, who may, statuses when allowed)
ENDPOINTS: list[tuple[str, str, str, Any, set[str], set[int]]] = [
    ("whoami", "GET", "/v1/whoami", None, ALL, {200}),
    (
        "pseudonymise",
        "POST",
        "/v1/pseudonymise",
        {"kind": "card", "values": ["12345678"]},
        {"casino-app"},
        {200},
    ),
    ("tokenise_file", "POST", "/v1/files?column=card=card", UPLOAD, {"casino-app"}, {202}),
    ("job_read", "GET", "/v1/jobs", None, {"casino-app"}, {200}),
    ("job_status", "GET", "/v1/jobs/0123456789abcdef0123456789abcdef", None, {"casino-app"}, {404}),
    (
        "job_download",
        "GET",
        "/v1/jobs/0123456789abcdef0123456789abcdef/output",
        None,
        {"casino-app"},
        {404},
    ),
    (
        "job_delete",
        "DELETE",
        "/v1/jobs/0123456789abcdef0123456789abcdef",
        None,
        {"casino-app"},
        {404},
    ),
    ("card_enrol", "POST", "/v1/cards/enrol", {"values": ["12345678"]}, {"casino-app"}, {200}),
    (
        "card_associate",
        "POST",
        "/v1/cards/associate",
        {"card": "12345678", "other_domain": "sncf", "other_card": "87654321"},
        {"casino-app"},
        {404},
    ),
    (
        "card_dissociate",
        "POST",
        "/v1/cards/dissociate",
        {"card": "12345678"},
        {"casino-app"},
        {404},
    ),
    (
        "customer_transfer",
        "POST",
        "/v1/customers/transfer",
        {"card": "12345678"},
        {"casino-app"},
        {404},
    ),
    (
        "link_resolve",
        "GET",
        "/v1/links/hub.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        None,
        {"hub-app"},
        {404},
    ),
    (
        "link_resolve",
        "POST",
        "/v1/links/resolve",
        {"linking_keys": ["nonsense"]},
        {"hub-app"},
        {200},
    ),
    ("inbox_read", "GET", "/v1/inbox", None, {"casino-app", "hub-app"}, {200}),
    (
        "inbox_get",
        "GET",
        "/v1/inbox/0123456789abcdef0123456789abcdef",
        None,
        {"casino-app", "hub-app"},
        {404},
    ),
    (
        "inbox_ack",
        "POST",
        "/v1/inbox/0123456789abcdef0123456789abcdef/ack",
        None,
        {"casino-app", "hub-app"},
        {404},
    ),
    (
        "campaign_send",
        "POST",
        "/v1/campaigns",
        {"name": "c", "linking_keys": ["x"]},
        {"hub-app"},
        {200},
    ),
    (
        "customer_withdraw",
        "POST",
        "/v1/customers/withdraw",
        {"card": "12345678"},
        {"casino-app"},
        {404},
    ),
    ("audit_read", "GET", "/v1/audit/entries", None, {"dpo"}, {200}),
    (
        "audit_report",
        "GET",
        "/v1/audit/report?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z",
        None,
        {"dpo"},
        {200},
    ),
    ("audit_verify", "GET", "/v1/audit/verify", None, {"dpo"}, {200}),
    ("audit_checkpoints", "GET", "/v1/audit/checkpoints", None, {"dpo"}, {200}),
    ("audit_alerts", "GET", "/v1/audit/alerts", None, {"dpo"}, {200}),
    ("audit_export", "GET", "/v1/audit/export", None, {"dpo"}, {200}),
    (
        "audit_subject",
        "POST",
        "/v1/audit/subject",
        {"domain": "casino", "kind": "card", "value": "12345678"},
        {"dpo"},
        {200},
    ),
    ("audit_proof", "GET", "/v1/audit/proof?seq=0", None, {"dpo"}, {200, 404}),
    ("domain_list", "GET", "/v1/domains", None, {"ops"}, {200}),
    ("domain_add", "POST", "/v1/domains", {"name": "shop", "role": "partner"}, {"ops"}, {201}),
    ("key_list", "GET", "/v1/domains/casino/keys", None, {"ops"}, {200}),
    ("key_rotate", "POST", "/v1/domains/sncf/keys/rotate", None, {"ops"}, {200}),
    ("key_destroy", "POST", "/v1/domains/casino/keys/9/destroy", None, {"ops"}, {404}),
    ("client_list", "GET", "/v1/clients", None, {"ops"}, {200}),
    (
        "client_request",
        "POST",
        "/v1/clients",
        {"name": "newbie", "role": "auditor"},
        {"ops"},
        {202},
    ),
    ("client_request_list", "GET", "/v1/clients/requests", None, {"ops"}, {200}),
    ("client_approve", "POST", f"/v1/clients/requests/{'0' * 32}/approve", None, {"ops"}, {404}),
    ("client_revoke", "POST", "/v1/clients/nobody/revoke", None, {"ops"}, {404}),
    ("client_rotate_key", "POST", "/v1/clients/nobody/rotate-key", None, {"ops"}, {404}),
]


def call(api: Api, who: str | None, method: str, path: str, body: Any) -> Any:
    headers = api.headers(who) if who else {"X-Purpose": "test"}
    if body is UPLOAD:
        return api.http.request(method, path, headers=headers, files=UPLOAD)
    return api.http.request(method, path, headers=headers, json=body)


@pytest.mark.parametrize("who", [*sorted(ALL), None])
@pytest.mark.parametrize(
    ("action", "method", "path", "body", "allowed", "statuses"),
    ENDPOINTS,
    ids=[e[0] for e in ENDPOINTS],
)
def test_role_matrix(
    api: Api,
    who: str | None,
    action: str,
    method: str,
    path: str,
    body: Any,
    allowed: set[str],
    statuses: set[int],
) -> None:
    before = len(api.database.audit_entries())
    response = call(api, who, method, path, body)
    entries = api.database.audit_entries()
    assert before + 1 == len(entries), response.text
    entry = entries[-1]
    assert (who or "anonymous") == entry.actor
    if who is None:
        assert (401, "unauthorised") == (response.status_code, response.json()["error"]["code"])
        assert ("denied", "unauthorised") == (entry.outcome, entry.code)
    elif who in allowed:
        assert response.status_code in statuses, response.text
        assert entry.outcome == ("ok" if response.status_code < 400 else "error")
    else:
        assert (403, "forbidden") == (response.status_code, response.json()["error"]["code"])
        assert ("denied", "forbidden") == (entry.outcome, entry.code)
    assert action == entry.action or entry.outcome != "ok"


def test_another_partners_domain_is_answered_as_unknown(api: Api) -> None:
    hidden = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": ["12345678"], "domain": "sncf"},
    )
    unknown = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": ["12345678"], "domain": "zzz"},
    )
    assert 404 == hidden.status_code == unknown.status_code
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "unknown_domain"
    assert hidden.json()["error"]["message"].replace("sncf", "X") == unknown.json()["error"][
        "message"
    ].replace("zzz", "X")
    entries = api.database.audit_entries()
    assert ("denied", "forbidden", ("sncf",)) == (
        entries[-2].outcome,
        entries[-2].code,
        entries[-2].domains,
    )


def test_a_partner_cannot_read_another_partners_job(api: Api) -> None:
    created = api.http.post(
        "/v1/files?column=card=card", headers=api.headers("casino-app"), files=UPLOAD
    )
    assert 202 == created.status_code
    job_id = created.json()["id"]
    assert 200 == api.http.get(f"/v1/jobs/{job_id}", headers=api.headers("casino-app")).status_code
    other = api.http.get(f"/v1/jobs/{job_id}", headers=api.headers("sncf-app"))
    assert (404, "unknown_job") == (other.status_code, other.json()["error"]["code"])
    output = api.http.get(f"/v1/jobs/{job_id}/output", headers=api.headers("sncf-app"))
    assert 404 == output.status_code
