"""Blind mode over the API: a partner blinds its identifiers itself (``keys.oprf``), the service
evaluates them with the domain's oblivious function and proves it, and the partner checks the
proof against the published key and unblinds. The service never receives an identifier."""

from __future__ import annotations

import base64

import pytest

from keys.oprf import Mode, blind, finalize, hash_to_group, verify_proof
from tests.api.conftest import Api, api_of
from tests.conftest import Database

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
    assert [(k["version"], k["state"]) for k in keys["keys"]] == [(1, "active")]
    assert len(raw(keys["keys"][0]["public"])) == 32
