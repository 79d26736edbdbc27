"""The auditor's part over HTTP, mirroring the audit command line."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from audit import verify_bundle
from audit.note import Note
from tests.api.conftest import CLIENTS, Api
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


def test_every_role_reads_the_newest_checkpoint_as_a_signed_note(api: Api) -> None:
    """It holds a size and hashes only; reading it is logged; anonymous callers get 401."""
    notes = {}
    for name in CLIENTS:
        reply = api.http.get("/v1/audit/checkpoint", headers=api.headers(name, purpose=None))
        assert (200, "text/plain; charset=utf-8") == (
            reply.status_code,
            reply.headers["content-type"],
        )
        notes[name] = Note.parse(reply.text)
    for note in notes.values():
        origin, size, _root, chain, time, _ = note.text.split("\n")
        assert origin.startswith("tiers/") and int(size) > 0
        assert chain.startswith("chain ") and time.startswith("time ")
        assert [origin] == [s.name for s in note.signatures]
    assert 401 == api.http.get("/v1/audit/checkpoint").status_code
    reads = [e for e in api.database.audit_entries() if e.action == "audit_checkpoint_read"]
    assert sorted([*CLIENTS, "anonymous"]) == sorted(e.actor for e in reads)
    assert {"anonymous": "denied"} == {e.actor: e.outcome for e in reads if e.outcome != "ok"}
