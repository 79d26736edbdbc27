"""GET /metrics: parsed by the Prometheus client's own parser, counted against the calls made,
restricted to its callers, and free of any identifier, pseudonym or key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.vitals import metrics_allowed
from tests.api.conftest import Api, api_of
from tests.conftest import Database

CARDS = ["4970101234567001", "4970101234567002"]
EMAILS = ["camille.martin@example.fr"]
METRICS_TOKEN = "metrics-credential-for-tests-only"


@pytest.fixture
def monitored(database: Database) -> Iterator[Api]:
    with api_of(database, metrics_token=METRICS_TOKEN) as made:
        yield made


def _scrape(api: Api) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    answer = api.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert 200 == answer.status_code
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    return answer.text, samples


def test_metrics_count_calls_identifiers_and_refusals_by_name_only(monitored: Api) -> None:
    api = monitored
    made = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app", "loyalty"),
        json={"kind": "card", "values": CARDS},
    )
    pseudonyms = [p for p in made.json()["pseudonyms"]]
    api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app", "loyalty"),
        json={"kind": "email", "values": EMAILS},
    )
    links = api.http.get(f"/v1/links/{pseudonyms[0]}", headers=api.headers("hub-app"))
    assert links.status_code >= 400  # a partner's pseudonym is no hub key: refused
    api.http.get("/v1/whoami", headers={"Authorization": "Bearer tiers_nothing_at_all"})
    api.http.post(  # refused: no purpose
        "/v1/pseudonymise",
        headers=api.headers("casino-app", None),
        json={"kind": "card", "values": CARDS},
    )
    text, samples = _scrape(api)

    assert 3 == samples[("tiers_identifiers_processed_total", (("action", "pseudonymise"),))]
    ok = (("method", "POST"), ("route", "pseudonymise"), ("status", "200"))
    assert 2 == samples[("tiers_http_requests_total", ok)]
    assert 1 == samples[("tiers_refusals_total", (("code", "purpose_required"),))]
    assert 1 == samples[("tiers_refusals_total", (("code", "unauthorised"),))]
    refused = [
        k for k in samples if k[0] == "tiers_http_requests_total" and ("route", "whoami") in k[1]
    ]
    assert [("status", "401")] == [(n, v) for n, v in refused[0][1] if n == "status"]
    assert samples[("tiers_http_request_duration_seconds_count", (("route", "pseudonymise"),))] >= 2
    assert samples[("tiers_up", ())] == 1
    assert samples[("tiers_master_key_available", ())] == 1
    assert samples[("tiers_hsm_pin_refusals_total", ())] == 0
    assert samples[("tiers_log_entries", ())] >= 5
    assert ("tiers_checkpoint_age_seconds", ()) in samples
    # nothing the callers sent or received is in a label, or anywhere in the exposition
    secrets = [*CARDS, *EMAILS, *pseudonyms, *api.tokens.values(), METRICS_TOKEN]
    labels = {value for _, pairs in samples for _, value in pairs}
    assert not [s for s in secrets if s in text or any(s in label for label in labels)]
    assert not [label for label in labels if "@" in label or (label.isdigit() and len(label) > 6)]


def test_metrics_are_for_the_monitoring_only(monitored: Api, database: Database) -> None:
    # the test client is no address of the allowed networks (127.0.0.1/32, ::1/128)
    for headers in ({}, {"Authorization": "Bearer wrong"}, monitored.headers("ops")):
        answer = monitored.http.get("/metrics", headers=headers)
        assert (403, "forbidden") == (answer.status_code, answer.json()["error"]["code"])
    settings = database.settings(metrics_token=METRICS_TOKEN)
    here = {"client": ("127.0.0.1", 5000), "headers": []}
    there = {"client": ("10.1.2.3", 5000), "headers": []}
    assert metrics_allowed(here, settings) and not metrics_allowed(there, settings)
    assert metrics_allowed({"client": ("::1", 5000), "headers": []}, settings)
    assert metrics_allowed(there, database.settings(metrics_allow="10.0.0.0/8"))
    assert not metrics_allowed(here, database.settings(metrics_allow=""))
    with_key = {**there, "headers": [(b"authorization", f"Bearer {METRICS_TOKEN}".encode())]}
    wrong_key = {**there, "headers": [(b"authorization", b"Bearer metrics-credential")]}
    assert metrics_allowed(with_key, settings) and not metrics_allowed(wrong_key, settings)
    assert not metrics_allowed(with_key, database.settings())  # no credential configured


def test_docs_are_served_from_the_package_not_a_cdn(monitored: Api) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = monitored.http.get(page).text
        assert "cdn" not in html.lower() and "googleapis" not in html
        script = next(
            part.split('"')[0] for part in html.split('src="')[1:] if asset in part.split('"')[0]
        )
        assert script.startswith("/")
        loaded = monitored.http.get(script)
        assert 200 == loaded.status_code and len(loaded.content) > 100_000
