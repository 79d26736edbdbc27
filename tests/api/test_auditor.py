"""The auditor's part over HTTP, mirroring the audit command line."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from audit import verify_bundle
from tests.api.conftest import Api
from tests.conftest import assert_absent


def test_an_auditor_reviews_verifies_exports_and_finds_a_customer(api: Api) -> None:
    card = "4970101234569999"
    api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app", "loyalty"),
        json={"kind": "card", "values": [card]},
    )
    api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("sncf-app", "loyalty"),
        json={"kind": "card", "values": [card]},
    )
    dpo = api.headers("dpo", "regulator request 2026-114")
    entries = api.http.get("/v1/audit/entries", headers=dpo, params={"actor": "casino-app"}).json()
    assert ["pseudonymise"] == [e["action"] for e in entries]
    verify = api.http.get("/v1/audit/verify", headers=dpo).json()
    assert verify["intact"] and "audit log intact" in verify["summary"]
    exported = api.http.get("/v1/audit/export", headers=dpo)
    result = verify_bundle(exported.content, expected_key=verify["key"])
    assert result.entries >= 2
    checkpoints = api.http.get("/v1/audit/checkpoints", headers=dpo).json()
    assert checkpoints and verify["key"] == checkpoints[-1]["key"]
    found = api.http.post(
        "/v1/audit/subject", headers=dpo, json={"domain": "casino", "kind": "card", "value": card}
    ).json()
    assert [("casino-app", "pseudonymise"), ("sncf-app", "pseudonymise")] == [
        (e["actor"], e["action"]) for e in found
    ]
    assert_absent(exported.content + str(found).encode(), [card], "what the auditor receives")
    last = api.database.audit_entries()[-1]
    assert ("dpo", "audit_subject", "regulator request 2026-114") == (
        last.actor,
        last.action,
        last.purpose,
    )


def test_a_damaged_log_answers_409_with_the_first_bad_entry(api: Api) -> None:
    engine = create_engine(api.database.url or f"sqlite:///{api.database.home / 'tiers.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_entries SET actor = 'ghost' WHERE seq = 2"))
    engine.dispose()
    response = api.http.get("/v1/audit/verify", headers=api.headers("dpo"))
    assert (409, "tampered", 2) == (
        response.status_code,
        response.json()["error"]["code"],
        response.json()["error"]["seq"],
    )
