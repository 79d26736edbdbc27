"""Blind mode over the API: a partner blinds its identifiers itself (``keys.oprf``), the service
evaluates them with the domain's oblivious function and proves it, and the partner checks the
proof against the published key and unblinds. The service never receives an identifier."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from keys.oprf import Mode, blind, finalize, hash_to_group, verify_proof
from tests.api.conftest import Api, api_of
from tests.conftest import ACCESS, Database, assert_absent
from tiers.admin import destroy_key, rotate_key
from tiers.blind import blind_pseudonym_text
from tiers.clients import add_client
from tiers.deployment import Deployment
from tiers.pseudonyms import Pseudonym

CLEAR = [b"anne.leroy@example.fr", b"4970101234567890", b"+33612345678"]


def text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def evaluated(api: Api, who: str, values: list[bytes]) -> tuple[list[bytes], dict[str, object]]:
    """The partner's whole round: blind, send, check the proof with the published key,
    unblind. Returns the outputs and the answer."""
    blinds = [blind(value, Mode.VOPRF) for value in values]
    answer = api.http.post(
        "/v1/blind/evaluate",
        headers=api.headers(who),
        json={"elements": [text(element) for _, element in blinds]},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    domain = body["domain"]
    keys = api.http.get(f"/v1/blind/keys/{domain}", headers=api.headers(who)).json()["keys"]
    (public,) = [raw(k["public"]) for k in keys if k["version"] == body["version"]]
    elements = [element for _, element in blinds]
    results = [raw(e) for e in body["evaluated"]]
    assert verify_proof(public, elements, results, raw(body["proof"]))
    outputs = [finalize(v, b, e) for v, (b, _), e in zip(values, blinds, results, strict=True)]
    return outputs, body


def test_a_partner_gets_its_outputs_without_sending_an_identifier(api: Api) -> None:
    first, body = evaluated(api, "casino-app", CLEAR)
    again, _ = evaluated(api, "casino-app", CLEAR)
    assert first == again  # two blindings of one identifier: one output
    other, _ = evaluated(api, "sncf-app", CLEAR)
    assert not set(first) & set(other)  # another domain's key: unrelated outputs
    assert body["domain"] == "casino" and body["version"] == 1
    stored = repr(api.database.rows()).encode() + repr(api.database.audit_entries()).encode()
    for value in CLEAR:
        assert value not in stored and value.decode() not in stored.decode()
    entry = next(e for e in api.database.audit_entries() if e.action == "blind_evaluate")
    assert (entry.counts.records_in, entry.counts.records_out) == (3, 3)
    assert entry.actor == "casino-app" and entry.domains == ("casino",)


def test_a_proof_against_another_domains_key_fails(api: Api) -> None:
    _, element = blind(b"x", Mode.VOPRF)
    body = api.http.post(
        "/v1/blind/evaluate", headers=api.headers("casino-app"), json={"elements": [text(element)]}
    ).json()
    keys = api.http.get("/v1/blind/keys/sncf", headers=api.headers("sncf-app")).json()["keys"]
    proof, result = raw(body["proof"]), [raw(body["evaluated"][0])]
    assert not verify_proof(raw(keys[0]["public"]), [element], result, proof)


@pytest.mark.parametrize(
    "element",
    [
        text(bytes(32)),  # the identity
        text(b"\xff" * 32),  # no element encodes to it
        text(b"\x01" * 31),  # too short
        "not base64 at all, not at all, not at all!",
    ],
)
def test_a_malformed_element_refuses_the_call_with_a_code(api: Api, element: str) -> None:
    good = text(hash_to_group(b"y", Mode.VOPRF))
    answer = api.http.post(
        "/v1/blind/evaluate", headers=api.headers("casino-app"), json={"elements": [good, element]}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_element"
    assert element not in answer.text


def test_only_partners_evaluate_and_only_in_their_domain(api: Api) -> None:
    good = text(hash_to_group(b"z", Mode.VOPRF))
    hub = api.http.post(
        "/v1/blind/evaluate", headers=api.headers("hub-app"), json={"elements": [good]}
    )
    assert hub.status_code == 403
    other = api.http.post(
        "/v1/blind/evaluate",
        headers=api.headers("casino-app"),
        json={"elements": [good], "domain": "sncf"},
    )
    assert other.status_code == 404  # another partner's domain is answered as unknown
    keys = api.http.get("/v1/blind/keys/sncf", headers=api.headers("casino-app"))
    assert keys.status_code == 404


def test_the_keys_say_how_the_domain_normalises(database: Database) -> None:
    with api_of(database, phone_region="BE") as api:
        keys = api.http.get("/v1/blind/keys/casino", headers=api.headers("casino-app")).json()
    assert (keys["domain"], keys["card_luhn"], keys["phone_region"]) == ("casino", False, "BE")
    assert keys["scheme"] == "hmac"  # blind pseudonyms are the partner's own here
    assert [(k["version"], k["state"]) for k in keys["keys"]] == [(1, "active")]
    assert len(raw(keys["keys"][0]["public"])) == 32


def _blind_only_partner(api: Api) -> dict[str, str]:
    """A partner domain created blind-only through the API, and its client's headers."""
    made = api.http.post(
        "/v1/domains", headers=api.headers("ops"),
        json={"name": "galeries", "role": "partner", "blind_only": True},
    )  # fmt: skip
    assert (made.status_code, made.json()["blind_only"]) == (201, True), made.text
    deployment = Deployment.open(api.database.settings())
    try:
        token = add_client(
            deployment, access=ACCESS, name="galeries-app", role="partner", domain="galeries"
        ).token
    finally:
        deployment.close()
    api.tokens["galeries-app"] = token
    return api.headers("galeries-app")


CARD = "4970101234567893"


def test_a_blind_only_domain_takes_no_clear_identifier(api: Api) -> None:
    galeries = _blind_only_partner(api)
    dpo = api.headers("dpo")
    clear_calls = [
        ("/v1/pseudonymise", galeries, {"json": {"kind": "card", "values": [CARD]}}),
        ("/v1/cards/enrol", galeries, {"json": {"values": [CARD]}}),
        ("/v1/files", galeries, {"data": {"column": "card=card"},
                                 "files": {"file": ("c.csv", f"card\n{CARD}\n", "text/csv")}}),
        ("/v1/audit/subject", dpo, {"json": {"domain": "galeries", "kind": "card", "value": CARD}}),
    ]  # fmt: skip
    for path, headers, body in clear_calls:
        answer = api.http.post(path, headers=headers, **body)
        assert (path, 403, "blind_only") == (
            path, answer.status_code, answer.json()["error"]["code"],
        ), answer.text  # fmt: skip
        assert CARD not in answer.text
    refused = [e for e in api.database.audit_entries() if e.code == "blind_only"]
    assert [e.outcome for e in refused] == ["denied"] * len(clear_calls)
    # Blinded, the same customers are served.
    _, element = blind(b"\x00\x00\x00\x04card\x00\x00\x00\x10" + CARD.encode(), Mode.VOPRF)
    answer = api.http.post(
        "/v1/blind/evaluate", headers=galeries, json={"elements": [text(element)]}
    )
    assert answer.status_code == 200, answer.text
    keys = api.http.get("/v1/blind/keys/galeries", headers=galeries).json()
    assert keys["domain"] == "galeries" and keys["keys"][0]["version"] == 1
    assert_absent(api.database.stored_bytes(), [CARD], "the database")
    # Another partner's domain still takes clear identifiers.
    other = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": [CARD]},
    )
    assert other.status_code == 200


def test_only_a_partner_s_domain_is_blind_only(api: Api) -> None:
    hub = api.http.post(
        "/v1/domains", headers=api.headers("ops"),
        json={"name": "hub-two", "role": "hub", "blind_only": True},
    )  # fmt: skip
    assert (hub.status_code, hub.json()["error"]["code"]) == (400, "bad_role")
    listed = api.http.get("/v1/domains", headers=api.headers("ops")).json()
    assert {d["name"]: d["blind_only"] for d in listed} == {
        "audit": False, "casino": False, "sncf": False, "hub": False,
    }  # fmt: skip


def _blind_pseudonym(api: Api, who: str, data: bytes) -> tuple[int, str]:
    """The key version and the blind pseudonym of ``data``: the hash sent unblinded, so the
    evaluation is the pseudonym itself (a partner would blind it and take the blind off)."""
    point = hash_to_group(data, Mode.VOPRF)
    body = api.http.post(
        "/v1/blind/evaluate", headers=api.headers(who), json={"elements": [text(point)]}
    ).json()
    return body["version"], blind_pseudonym_text(
        body["domain"], body["version"], raw(body["evaluated"][0])
    )


def _translate(api: Api, pseudonyms: list[str], who: str = "casino-app") -> Any:
    return api.http.post(
        "/v1/blind/translate", headers=api.headers(who), json={"pseudonyms": pseudonyms}
    )


def test_a_rotation_re_keys_blind_pseudonyms_without_the_identifiers(api: Api) -> None:
    values = [b"\x00\x00\x00\x05email\x00\x00\x00\x0danne@exemple.fr", b"other", b"third"]
    before = [_blind_pseudonym(api, "casino-app", v)[1] for v in values]
    deployment = Deployment.open(api.database.settings())
    try:
        rotate_key(deployment, access=ACCESS, domain="casino")
    finally:
        deployment.close()
    after = [_blind_pseudonym(api, "casino-app", v) for v in values]
    assert {version for version, _ in after} == {2}
    answer = _translate(api, [*before, after[0][1]])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["domain"], body["version"]) == ("casino", 2)
    assert body["pseudonyms"] == [p for _, p in after] + [after[0][1]]
    assert not set(before) & set(body["pseudonyms"])
    entry = api.database.audit_entries()[-1]
    assert (entry.action, entry.counts.records_in, entry.detail["version"]) == (
        "blind_translate", 4, 2,
    )  # fmt: skip
    # One proof per source version, against the two published keys (RFC 9497's A and B).
    published = api.http.get("/v1/blind/keys/casino", headers=api.headers("casino-app")).json()
    public = {k["version"]: raw(k["public"]) for k in published["keys"]}
    sent = [*before, after[0][1]]
    assert [p["version"] for p in body["proofs"]] == [1, 2]
    for given in body["proofs"]:
        places = [i for i, t in enumerate(sent) if t.startswith(f"casino.v{given['version']}.")]
        elements = [Pseudonym.parse(sent[i]).value for i in places]
        moved = [Pseudonym.parse(body["pseudonyms"][i]).value for i in places]
        proof = raw(given["proof"])
        assert verify_proof(public[2], elements, moved, proof, generator=public[given["version"]])
        assert not verify_proof(public[2], elements, moved[::-1], proof, generator=public[1])
    # Crypto-shredding: once version 1 is destroyed, its pseudonyms cannot be moved on.
    deployment = Deployment.open(api.database.settings())
    try:
        destroy_key(deployment, access=ACCESS, domain="casino", version=1)
    finally:
        deployment.close()
    gone = _translate(api, before[:1])
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "key_destroyed")


def test_translation_refuses_what_is_not_one_of_the_domain_s_blind_pseudonyms(api: Api) -> None:
    _, mine = _blind_pseudonym(api, "casino-app", b"x")
    _, theirs = _blind_pseudonym(api, "sncf-app", b"x")
    head, encoded = mine.rsplit(".", 1)
    stray = f"{head}.{encoded[:-1]}{'b' if encoded[-1] != 'b' else 'c'}"  # bits past the 256th
    identity = blind_pseudonym_text("casino", 1, bytes(32))
    cases = {
        theirs: "domain_mismatch",
        "casino.v1.aaaa": "bad_pseudonym",
        stray: "bad_pseudonym",
        mine.replace(".v1.", ".v9."): "unknown_key_version",
        identity: "bad_element",
        "casino.v1.qblrubodzluprd5crb65ofxrbvhlwiu5": "bad_pseudonym",  # an HMAC pseudonym
    }
    for pseudonym, code in cases.items():
        answer = _translate(api, [mine, pseudonym])
        assert (pseudonym, code) == (pseudonym, answer.json()["error"]["code"]), answer.text
        assert pseudonym not in answer.text
    assert _translate(api, []).status_code == 422  # the schema: at least one
    hub = _translate(api, [mine], who="hub-app")
    assert hub.status_code == 403
