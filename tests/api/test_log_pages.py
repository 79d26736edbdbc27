"""The access log by pages and the access report over HTTP, against an independent model: the
entries read straight from the database and filtered here."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api
from tests.conftest import assert_absent
from tiers import log_views

CARDS = ["4970101234560001", "4970101234560002", "4970101234560003"]


def _activity(api: Api) -> datetime:
    """Calls of several actors, purposes and outcomes; the time after them."""
    for i, card in enumerate(CARDS):
        for name in ("casino-app", "sncf-app"):
            api.http.post(
                "/v1/pseudonymise",
                headers=api.headers(name, "loyalty" if i % 2 else "fraud"),
                json={"kind": "card", "values": [card, CARDS[0]]},
            )
    api.http.post(  # refused: a domain the partner does not own
        "/v1/pseudonymise",
        headers=api.headers("casino-app", "loyalty"),
        json={"kind": "card", "values": [CARDS[0]], "domain": "sncf"},
    )
    api.http.get("/v1/whoami", headers=api.headers("hub-app"))
    time.sleep(0.01)
    until = datetime.now(UTC)
    time.sleep(0.01)
    return until


def _pages(api: Api, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Every page, following the Link header; the entries and the number of pages."""
    found: list[dict[str, Any]] = []
    url: str | None = "/v1/audit/entries"
    pages = 0
    while url is not None:
        answer = api.http.get(url, headers=api.headers("dpo"), params=params if not pages else None)
        assert 200 == answer.status_code, answer.text
        found += answer.json()
        pages += 1
        link = answer.headers.get("link")
        if link is None:
            assert "x-next-after" not in answer.headers
            url = None
        else:
            url = re.fullmatch(r'<([^>]+)>; rel="next"', link)[1]  # type: ignore[index]
            # a page may come back short, even empty, at the scan's bound: the cursor is the
            # last entry read, kept or not
            assert all(e["seq"] <= int(answer.headers["x-next-after"]) for e in answer.json())
        assert pages < 200
    return found, pages


def _model(api: Api, until: datetime, wanted: dict[str, str]) -> list[int]:
    entries = [e for e in api.database.audit_entries() if e.time < until]
    return [
        e.seq
        for e in entries
        if all(
            value in e.domains if name == "domain" else getattr(e, name) == value
            for name, value in wanted.items()
        )
    ]


FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "actor": st.sampled_from(["casino-app", "sncf-app", "hub-app", "operator:test"]),
        "role": st.sampled_from(["partner", "hub", "operator"]),
        "action": st.sampled_from(["pseudonymise", "whoami", "domain_add"]),
        "domain": st.sampled_from(["casino", "sncf", "hub"]),
        "outcome": st.sampled_from(["ok", "denied"]),
        "purpose": st.sampled_from(["loyalty", "fraud", "test"]),
    },
)


def test_pages_follow_the_filters_and_miss_or_repeat_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = _activity(api)
    # small chunks and scan bound, so that pages come back short with a cursor to go on
    monkeypatch.setattr(log_views, "CHUNK", 3)
    monkeypatch.setattr(log_views, "SCAN_LIMIT", 7)

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(wanted=FILTERS, limit=st.integers(1, 6))
    def pages_match(wanted: dict[str, str], limit: int) -> None:
        params: dict[str, Any] = {**wanted, "until": until.isoformat(), "limit": limit}
        found, pages = _pages(api, params)
        assert _model(api, until, wanted) == [e["seq"] for e in found]
        assert pages >= len(found) / limit

    pages_match()


def test_a_page_is_an_entry_with_its_filters_and_bad_paging_is_refused(api: Api) -> None:
    _activity(api)
    dpo = api.headers("dpo", "inspection 2026-7")
    first = api.http.get("/v1/audit/entries", headers=dpo, params={"limit": 2, "role": "partner"})
    assert 2 == len(first.json()) and "link" in first.headers
    last = api.database.audit_entries()[-1]
    assert ("audit_read", "inspection 2026-7", 2) == (
        last.action,
        last.purpose,
        last.counts.records_out,
    )
    assert {"role": "partner"} == dict(last.detail)
    for params, code, status in (
        ({"limit": 0}, "invalid_request", 422),
        ({"limit": log_views.MAX_PAGE + 1}, "invalid_request", 422),
        ({"after": -5}, "invalid_request", 422),
        ({"outcome": "maybe"}, "invalid_request", 422),
        ({"purpose": "a b"}, "invalid_request", 422),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "bad_period", 400),
    ):
        answer = api.http.get("/v1/audit/entries", headers=dpo, params=params)
        assert (status, code) == (answer.status_code, answer.json()["error"]["code"]), params
    # the default page is bounded
    many = api.http.get("/v1/audit/entries", headers=dpo).json()
    assert len(many) <= log_views.DEFAULT_PAGE


def test_the_report_counts_identifiers_as_well_as_calls(api: Api) -> None:
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    added = api.http.post(
        "/v1/domains", headers=api.headers("ops"), json={"name": "shop", "role": "partner"}
    )
    assert 201 == added.status_code, added.text
    until = _activity(api)
    params = {"since": since.isoformat(), "until": until.isoformat()}
    dpo = api.headers("dpo", "regulator")
    report = api.http.get("/v1/audit/report", headers=dpo, params=params).json()
    model = [e for e in api.database.audit_entries() if since <= e.time < until]
    pseudonymisations = [e for e in model if e.action == "pseudonymise" and e.outcome == "ok"]
    assert 6 == len(pseudonymisations)
    assert (len(model), 12) == (report["total"]["calls"], report["total"]["identifiers"])
    by_action = {r["action"]: r for r in report["per_action"]}
    assert (7, 1, 12) == (
        by_action["pseudonymise"]["calls"],
        by_action["pseudonymise"]["refused"],
        by_action["pseudonymise"]["identifiers"],
    )
    by_purpose = {r["purpose"]: r["identifiers"] for r in report["per_purpose"]}
    assert (8, 4) == (by_purpose["fraud"], by_purpose["loyalty"])
    by_domain = {r["domain"]: r["identifiers"] for r in report["per_domain"]}
    assert (6, 6) == (by_domain["casino"], by_domain["sncf"])
    assert [("casino-app", "denied")] == [(r["actor"], r["outcome"]) for r in report["refusals"]]
    assert report["verification"]["intact"]
    assert [("domain_add", "ops")] == [(c["action"], c["actor"]) for c in report["changes"]]
    html = api.http.get("/v1/audit/report", headers=dpo, params={**params, "format": "html"})
    assert 200 == html.status_code and html.headers["content-type"].startswith("text/html")
    assert "attachment" in html.headers["content-disposition"]
    images = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html.text)
    assert 2 == len(images) and "<script src" not in html.text
    assert_absent(html.content + str(report).encode(), CARDS, "the report")
    assert all(b"<svg" in base64.b64decode(i) for i in images)
