"""The console over HTTP on both databases (the browser tests, tests/console, drive it in
Chromium): sign-in and its refusals, the CSRF check, the pages' headers and their entries in
the log, sessions that end."""

from __future__ import annotations

import hashlib
import re

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.api.conftest import Api
from tests.conftest import ACCESS, assert_absent
from tiers.clients import rotate_client_key
from tiers.deployment import Deployment

CARD = "4970101234568888"


def _signed_in(api: Api, name: str, purpose: str = "inspection 2026-9") -> str:
    """Sign ``name`` in through the form; the CSRF token of the session's forms."""
    api.http.cookies.clear()
    api.http.get("/console/login")
    csrf = api.http.cookies.get("tiers_csrf")
    assert csrf
    answer = api.http.post(
        "/console/login",
        data={"api_key": api.tokens[name], "purpose": purpose, "csrftoken": csrf},
        follow_redirects=False,
    )
    assert 303 == answer.status_code, answer.text
    assert "/console/log" == answer.headers["location"]
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    return csrf


def test_a_session_reads_the_log_under_its_purpose(api: Api) -> None:
    _signed_in(api, "dpo")
    page = api.http.get("/console/log", params={"actor": "operator:test"})
    assert 200 == page.status_code
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert "domain_add" in page.text
    last = api.database.audit_entries()[-1]
    assert ("dpo", "audit_read", "inspection 2026-9") == (last.actor, last.action, last.purpose)
    assert {"actor": "operator:test"} == dict(last.detail)
    signed = [e for e in api.database.audit_entries() if e.action == "console_sign_in"]
    assert [("dpo", "ok")] == [(e.actor, e.outcome) for e in signed]
    # a session's token is stored as its SHA-256 only
    token = api.http.cookies.get("tiers_console")
    assert token
    assert_absent(api.database.stored_bytes(), [token], "the database")


def test_sign_in_refusals_are_logged(api: Api) -> None:
    for name, code, status in (
        ("casino-app", "console_role", 403),
        ("hub-app", "console_role", 403),
    ):
        api.http.cookies.clear()
        api.http.get("/console/login")
        answer = api.http.post(
            "/console/login",
            data={
                "api_key": api.tokens[name],
                "purpose": "x",
                "csrftoken": api.http.cookies.get("tiers_csrf"),
            },
            follow_redirects=False,
        )
        assert (status, True) == (answer.status_code, code in answer.text)
        assert "tiers_console" not in answer.headers.get("set-cookie", "")
    denied = [e for e in api.database.audit_entries() if e.action == "console_sign_in"]
    assert [("casino-app", "denied", "console_role"), ("hub-app", "denied", "console_role")] == [
        (e.actor, e.outcome, e.code) for e in denied
    ]
    # no purpose: refused too
    api.http.cookies.clear()
    api.http.get("/console/login")
    answer = api.http.post(
        "/console/login",
        data={"api_key": api.tokens["dpo"], "csrftoken": api.http.cookies.get("tiers_csrf")},
    )
    assert 400 == answer.status_code and "purpose_required" in answer.text
    # a wrong key, and a sign-in posted without the CSRF token
    answer = api.http.post(
        "/console/login",
        data={
            "api_key": "tiers_nothing",
            "purpose": "x",
            "csrftoken": api.http.cookies.get("tiers_csrf"),
        },
    )
    assert 401 == answer.status_code and "unauthorised" in answer.text
    assert 403 == api.http.post("/console/login", data={"api_key": api.tokens["dpo"]}).status_code


def test_forms_need_their_csrf_token_and_pages_their_session(api: Api) -> None:
    csrf = _signed_in(api, "ops", "rotation")
    refused = api.http.post("/console/domains/casino/keys/rotate", data={})
    assert 403 == refused.status_code and "csrf" in refused.text
    done = api.http.post("/console/domains/casino/keys/rotate", data={"csrftoken": csrf})
    assert 200 == done.status_code and "casino: version 2 is active" in done.text
    rotations = [e for e in api.database.audit_entries() if e.action == "key_rotate"]
    assert [("ops", "rotation")] == [(e.actor, e.purpose) for e in rotations]
    # an auditor's session cannot rotate (the core refuses, the page names the code)
    csrf = _signed_in(api, "dpo")
    refused = api.http.post("/console/domains/sncf/keys/rotate", data={"csrftoken": csrf})
    assert 403 == refused.status_code and "forbidden" in refused.text
    api.http.cookies.clear()
    away = api.http.get("/console/log", follow_redirects=False)
    assert (303, "/console/login") == (away.status_code, away.headers["location"])


def test_a_rotated_key_or_a_sign_out_ends_the_session(api: Api) -> None:
    csrf = _signed_in(api, "dpo")
    assert 200 == api.http.get("/console/alerts").status_code
    api.http.post("/console/logout", data={"csrftoken": csrf}, follow_redirects=False)
    assert 303 == api.http.get("/console/alerts", follow_redirects=False).status_code
    _signed_in(api, "dpo")
    engine = create_engine(api.database.url or f"sqlite:///{api.database.home / 'tiers.db'}")
    try:
        rows = engine.connect().execute(text("SELECT count(*) FROM console_sessions")).scalar()
        assert 1 == rows  # the signed-out session is gone
    finally:
        engine.dispose()
    # the operator gives the auditor a new key: the session of the old one ends at once
    deployment = Deployment.open(api.database.settings())
    try:
        rotate_client_key(deployment, access=ACCESS, name="dpo")
    finally:
        deployment.close()
    assert 303 == api.http.get("/console/alerts", follow_redirects=False).status_code


def test_the_subject_page_never_echoes_the_identifier(api: Api) -> None:
    api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": [CARD]},
    )
    csrf = _signed_in(api, "dpo")
    found = api.http.post(
        "/console/subject",
        data={"domain": "casino", "kind": "card", "value": CARD, "csrftoken": csrf},
    )
    assert 200 == found.status_code
    assert re.search(r"1 entries about that customer of casino", found.text)
    assert_absent(found.content + api.database.stored_bytes(), [CARD], "the subject page")


def test_a_session_row_written_in_the_database_opens_nothing(api: Api) -> None:
    """An insider with the database's write access cannot forge or widen a session: the row
    is sealed under the master key."""
    _signed_in(api, "dpo")
    forged = "forged-token-of-an-insider"
    engine = create_engine(api.database.url or f"sqlite:///{api.database.home / 'tiers.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE console_sessions SET token_hash = :hash"),
                {"hash": hashlib.sha256(forged.encode()).digest()},
            )
    finally:
        engine.dispose()
    api.http.cookies.set("tiers_console", forged, path="/console")
    away = api.http.get("/console/log", follow_redirects=False)
    assert (303, "/console/login") == (away.status_code, away.headers["location"])
    _signed_in(api, "dpo")
    engine = create_engine(api.database.url or f"sqlite:///{api.database.home / 'tiers.db'}")
    try:
        with engine.begin() as connection:  # a purpose changed after the fact
            connection.execute(text("UPDATE console_sessions SET purpose = 'anything'"))
    finally:
        engine.dispose()
    assert 303 == api.http.get("/console/log", follow_redirects=False).status_code


def test_the_service_page_shows_jobs_and_backlogs(api: Api) -> None:
    job = api.http.post(
        "/v1/files?column=card=card",
        headers=api.headers("casino-app", "monthly load"),
        files={"file": ("customers.csv", f"card\n{CARD}\nbad\n".encode(), "text/csv")},
    ).json()
    _signed_in(api, "ops")
    page = api.http.get("/console/service")
    assert 200 == page.status_code and "Ready" in page.text
    row = re.search(r'<table id="jobs">.*?</table>', page.text, re.S)
    assert row is not None
    assert job["id"][:12] in row[0] and "casino-app" in row[0] and "2 / 1 / 1" in row[0]
    assert_absent(page.content, [CARD], "the service page")
    _signed_in(api, "dpo")
    assert 403 == api.http.get("/console/service").status_code  # for admins only


def test_over_tls_the_cookies_are_secure(api: Api) -> None:
    """Behind a TLS proxy (the request's scheme is https) both cookies carry Secure."""
    secure = TestClient(api.http.app, base_url="https://testserver")
    page = secure.get("/console/login")
    assert "Secure" in page.headers["set-cookie"]  # the CSRF cookie
    answer = secure.post(
        "/console/login",
        data={
            "api_key": api.tokens["dpo"],
            "purpose": "over tls",
            "csrftoken": secure.cookies.get("tiers_csrf"),
        },
        follow_redirects=False,
    )
    assert 303 == answer.status_code
    assert "Secure" in answer.headers["set-cookie"] and "HttpOnly" in answer.headers["set-cookie"]
