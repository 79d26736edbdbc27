"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real
``tiers serve``: the auditor's day, the operator's key rotation, the refusals, the keyboard."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.conftest import assert_absent
from tests.console.conftest import CARDS, EMAILS, Server, shot, sign_in, start_server

pytestmark = pytest.mark.slow


def _never_shown(server: Server, *pages: str | bytes) -> None:
    """No value of the test's customers in what the browser got, the database, or the
    server's output."""
    seen = b"".join(p.encode() if isinstance(p, str) else p for p in pages)
    database = (server.home / "tiers.db").read_bytes()
    assert_absent(seen + database + server.output(), [*CARDS, *EMAILS], "the console")


def test_an_auditor_reviews_the_log_in_the_browser(page: Page, server: Server) -> None:
    sign_in(page, server, "dpo")
    expect(page).to_have_url(re.compile(r"/console/log$"))
    expect(page.get_by_role("heading", name="Access log")).to_be_visible()
    shot(page, "auditor-log")
    # filter: the partner's pseudonymisations, one a page
    page.get_by_label("Actor").fill("casino-app")
    page.get_by_label("Action").select_option("pseudonymise")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.entries tbody tr")
    expect(rows).to_have_count(3)  # two accepted, one refused
    expect(page.locator("table.entries tbody tr.denied")).to_have_count(1)
    shot(page, "auditor-log-filtered")
    page.goto(page.url + "&limit=1")
    expect(rows).to_have_count(1)
    first = rows.first.locator("td").first.inner_text()
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(1)
    assert rows.first.locator("td").first.inner_text() != first
    # an entry and its proof
    rows.first.locator("a").first.click()
    expect(page.get_by_role("heading", name=re.compile(r"Inclusion proof"))).to_be_visible()
    expect(page.locator("pre.note")).to_contain_text("— ")  # the signed note's signature line
    shot(page, "auditor-entry")
    _never_shown(server, page.content())


def test_the_auditor_verifies_the_log_and_sees_a_tampered_entry_named(
    page: Page, server: Server
) -> None:
    sign_in(page, server, "dpo")
    page.goto(server.url + "/console/verify")
    page.get_by_role("button", name="Verify the log now").click()
    expect(page.get_by_role("status")).to_contain_text("Intact", timeout=20_000)
    shot(page, "auditor-verify-intact")
    engine = create_engine(f"sqlite:///{server.home / 'tiers.db'}")
    try:
        with engine.begin() as connection:
            actor = connection.execute(text("SELECT actor FROM audit_entries WHERE seq = 5"))
            actor = actor.scalar_one()
            connection.execute(text("UPDATE audit_entries SET actor = 'ghost' WHERE seq = 5"))
        page.get_by_role("button", name="Verify the log now").click()
        expect(page.get_by_role("alert")).to_contain_text("DAMAGED", timeout=20_000)
        expect(page.locator("#first-bad")).to_have_text("entry 5")
        shot(page, "auditor-verify-damaged")
    finally:
        with engine.begin() as connection:  # the other tests of the module need a sound log
            connection.execute(
                text("UPDATE audit_entries SET actor = :actor WHERE seq = 5"), {"actor": actor}
            )
        engine.dispose()


def test_a_subject_look_up_never_shows_or_keeps_the_identifier(page: Page, server: Server) -> None:
    sign_in(page, server, "dpo")
    page.get_by_role("link", name="Subject").click()
    page.get_by_label("Domain").fill("casino")
    page.get_by_label("Kind").select_option("card")
    page.get_by_label("Identifier").fill(CARDS[0])
    page.get_by_role("button", name="Look up").click()
    expect(
        page.get_by_role("heading", name=re.compile(r"entries about that customer"))
    ).to_be_visible()
    expect(page.locator("table.entries tbody tr")).to_have_count(
        2
    )  # both partners' calls? casino's
    assert page.get_by_label("Identifier").input_value() == ""
    shot(page, "auditor-subject")
    _never_shown(server, page.content())


def test_the_report_shows_its_charts_and_downloads(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server, "dpo")
    page.get_by_role("link", name="Report").click()
    charts = page.locator("img.chart")
    expect(charts).to_have_count(2)
    for i in range(2):
        width = charts.nth(i).evaluate("image => image.naturalWidth")
        assert width > 0  # the SVG decoded and drew
    expect(page.locator("section.report")).to_contain_text("identifiers processed")
    shot(page, "auditor-report")
    with page.expect_download() as download:
        page.locator("#download").click()
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    document = saved.read_bytes()
    assert document.startswith(b"<!doctype html>") and document.count(b"data:image/svg+xml") == 2
    _never_shown(server, document, page.content())


def test_alerts_and_changes_pages(page: Page, server: Server) -> None:
    sign_in(page, server, "dpo")
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name=re.compile("Alerts"))).to_be_visible()
    shot(page, "auditor-alerts")
    page.get_by_role("link", name="Changes").click()
    expect(page.locator("table.entries")).to_contain_text("domain_add")
    shot(page, "auditor-changes")


def test_an_admin_rotates_a_key_through_its_confirmation(page: Page, server: Server) -> None:
    sign_in(page, server, "ops", purpose="quarterly key rotation")
    page.goto(server.url + "/console/domains")
    shot(page, "admin-domains")
    page.get_by_role("link", name="Rotate the key of sncf…").click()
    expect(page.locator("ul.consequences")).to_contain_text("verify-only")
    shot(page, "admin-rotate-confirm")
    page.get_by_role("button", name="Yes, rotate").click()
    expect(page.get_by_role("status")).to_contain_text("sncf: version 2 is active")
    page.get_by_role("link", name="Back to the domains").click()
    expect(page.locator("section", has_text="sncf").locator("tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Clients").click()
    expect(page.locator("table").first).to_contain_text("casino-app")
    shot(page, "admin-clients")
    page.get_by_role("link", name="Service").click()
    expect(page.get_by_role("status")).to_contain_text("Ready")
    shot(page, "admin-service")
    keys = server.api("ops", "GET", "/v1/domains/sncf/keys").json()
    assert ["verify-only", "active"] == [
        k["state"] for k in sorted(keys, key=lambda k: k["version"])
    ]


def test_a_partner_key_is_refused_and_logged(page: Page, server: Server) -> None:
    sign_in(page, server, "casino-app")
    expect(page.get_by_role("alert")).to_contain_text("console_role")
    assert not [c for c in page.context.cookies() if c["name"] == "tiers_console"]
    shot(page, "login-refused")
    entries = server.api(
        "dpo", "GET", "/v1/audit/entries", params={"action": "console_sign_in", "outcome": "denied"}
    ).json()
    assert ["casino-app"] == [e["actor"] for e in entries]


def test_a_form_without_its_csrf_token_is_refused(page: Page, server: Server) -> None:
    sign_in(page, server, "dpo")
    before = server.api("dpo", "GET", "/v1/audit/entries", params={"action": "audit_verify"}).json()
    answer = page.request.post(server.url + "/console/verify", form={"nothing": "here"})
    assert 403 == answer.status and "csrf" in answer.text()
    after = server.api("dpo", "GET", "/v1/audit/entries", params={"action": "audit_verify"}).json()
    assert len(before) == len(after)  # nothing ran


def test_the_session_cookie_and_headers(page: Page, server: Server) -> None:
    sign_in(page, server, "dpo")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tiers_console")
    assert (True, "Strict", "/console") == (cookie["httpOnly"], cookie["sameSite"], cookie["path"])
    assert not cookie["secure"]  # plain http on 127.0.0.1; over TLS it is Secure
    answer = page.request.get(server.url + "/console/log")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "default-src 'none'" in policy
    assert "no-store" == answer.headers["cache-control"]


def test_sign_out_ends_the_session(page: Page, server: Server) -> None:
    sign_in(page, server, "dpo")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.goto(server.url + "/console/log")
    expect(page).to_have_url(re.compile(r"/console/login$"))


def test_the_whole_flow_by_keyboard(page: Page, server: Server) -> None:
    page.goto(server.url + "/console/login")
    _tab_to(page, "api_key", by="id")
    page.keyboard.type(server.tokens["dpo"])
    page.keyboard.press("Tab")
    page.keyboard.type("keyboard-only review")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/log$"))
    _tab_to(page, "Verify")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/verify$"))
    _tab_to(page, "Verify the log now")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Intact", timeout=20_000)
    _tab_to(page, "Report")
    page.keyboard.press("Enter")
    expect(page.locator("img.chart")).to_have_count(2)
    _tab_to(page, "Sign out")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/login$"))


def _tab_to(page: Page, name: str, by: str = "innerText") -> None:
    """Press Tab until the focused element is the one whose ``by`` (text, id) is ``name``."""
    for _ in range(60):
        focused = page.evaluate(f"document.activeElement && document.activeElement.{by}")
        if (focused or "").strip() == name:
            return
        page.keyboard.press("Tab")
    pytest.fail(f"no focusable element named {name!r}")


def test_api_docs_load_with_the_network_blocked(page: Page, server: Server) -> None:
    outside: list[str] = []

    def only_the_service(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if request.url.startswith(server.url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(request.url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_the_service)
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("tiers", timeout=20_000)
    shot(page, "docs-swagger")
    assert [] == outside  # Swagger UI asks for nothing outside the service
    page.goto(server.url + "/redoc")
    expect(page.locator("h1")).to_contain_text("tiers", timeout=20_000)
    # ReDoc renders whole; it only tries to fetch its "powered by" logo, blocked here
    assert set(outside) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


def test_metrics_and_json_logs_of_the_real_server(server: Server) -> None:
    answer = httpx.get(server.url + "/metrics", timeout=10)
    assert 200 == answer.status_code
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert "tiers_http_requests" in families and "tiers_identifiers_processed" in families
    labels = {v for f in families.values() for s in f.samples for v in s.labels.values()}
    assert not [v for v in labels if any(c in v for c in [*CARDS, *EMAILS])]
    refused = httpx.get(
        server.url + "/v1/whoami",
        headers={"Authorization": "Bearer tiers_wrong", "X-Request-Id": "req-console-test-1"},
        timeout=10,
    )
    assert 401 == refused.status_code
    deadline = time.monotonic() + 10
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith(b"{")]
        if any(line.get("request_id") == "req-console-test-1" for line in lines):
            break
        time.sleep(0.2)
    mine = [line for line in lines if line.get("request_id") == "req-console-test-1"]
    assert [("request", "whoami", 401, "unauthorised")] == [
        (m["message"], m["route"], m["status"], m["code"]) for m in mine
    ]


@pytest.fixture
def idle_server(tmp_path: Path) -> Iterator[Server]:
    yield from start_server(tmp_path / "var", TIERS_CONSOLE_IDLE_SECONDS="5")


def test_an_idle_or_revoked_session_ends(page: Page, idle_server: Server) -> None:
    sign_in(page, idle_server, "dpo")
    expect(page).to_have_url(re.compile(r"/console/log$"))
    page.wait_for_timeout(6_000)
    page.goto(idle_server.url + "/console/log")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    sign_in(page, idle_server, "dpo")
    expect(page).to_have_url(re.compile(r"/console/log$"))
    revoked = idle_server.api("ops", "POST", "/v1/clients/dpo/revoke")
    assert 200 == revoked.status_code, revoked.text
    page.goto(idle_server.url + "/console/log")
    expect(page).to_have_url(re.compile(r"/console/login$"))
