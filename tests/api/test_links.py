"""Card links over HTTP, seen from the partners and from the hub."""

from __future__ import annotations

import base64

from sqlalchemy import create_engine, text

from tests.api.conftest import Api
from tests.conftest import assert_absent


def test_partners_link_cards_and_the_hub_resolves_them_in_its_own_domain(api: Api) -> None:
    casino, sncf, hub = (api.headers(n, "desk") for n in ("casino-app", "sncf-app", "hub-app"))
    enrolled = api.http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000001", "x"]})
    assert [{"index": 1, "code": "bad_character"}] == enrolled.json()["errors"]
    api.http.post("/v1/cards/enrol", headers=sncf, json={"values": ["70000001"]})
    linked = api.http.post(
        "/v1/cards/associate",
        headers=casino,
        json={"card": "10000001", "other_domain": "sncf", "other_card": "70000001"},
    )
    assert (200, "attach.first_enrolment", True) == (
        linked.status_code,
        linked.json()["rule"],
        linked.json()["attached_here"],
    )
    # The SNCF desk learns it is not the SG (SNCF may not act as one), nothing more.
    again = api.http.post(
        "/v1/cards/associate",
        headers=sncf,
        json={"card": "70000001", "other_domain": "casino", "other_card": "10000001"},
    ).json()
    assert {"rule": "link.already_linked", "changed": False, "attached_here": False} == {
        k: again[k] for k in ("rule", "changed", "attached_here")
    }
    refused = api.http.post("/v1/customers/transfer", headers=sncf, json={"card": "70000001"})
    assert (409, "transfer.not_sg") == (refused.status_code, refused.json()["error"]["code"])
    entry = api.database.audit_entries()[-1]
    assert ("denied", "transfer.not_sg", "sncf-app") == (entry.outcome, entry.code, entry.actor)
    # The hub: it cannot enrol or link, and resolves only hub keys.
    assert 403 == api.http.post("/v1/cards/enrol", headers=hub, json={"values": ["1"]}).status_code
    resolved = api.http.post(
        "/v1/links/resolve", headers=hub, json={"linking_keys": [enrolled.json()["pseudonyms"][0]]}
    ).json()
    assert "domain_mismatch" == resolved[0]["error"]  # a partner pseudonym means nothing here
    assert 403 == api.http.get("/v1/links/x", headers=casino).status_code


def test_the_hub_view_holds_only_hub_keys(api: Api) -> None:
    casino, sncf, hub = (api.headers(n, "desk") for n in ("casino-app", "sncf-app", "hub-app"))
    api.http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000001"]})
    api.http.post("/v1/cards/enrol", headers=sncf, json={"values": ["70000001"]})
    api.http.post(
        "/v1/cards/associate",
        headers=casino,
        json={"card": "10000001", "other_domain": "sncf", "other_card": "70000001"},
    )
    engine = create_engine(api.database.url or f"sqlite:///{api.database.home / 'tiers.db'}")
    with engine.connect() as connection:
        version, value = connection.execute(
            text("SELECT version, value FROM hub_keys WHERE kind = 'customer'")
        ).one()
    engine.dispose()
    alliance = f"hub.v{version}.{base64.b32encode(bytes(value)).decode().lower()}"
    view = api.http.get(f"/v1/links/{alliance}", headers=hub)
    body = view.json()
    assert (200, "casino", alliance) == (
        view.status_code,
        body["attached_to"],
        body["alliance_key"],
    )
    assert {"casino", "sncf"} == {c["partner"] for c in body["cards"]}
    assert all(c["linking_key"].startswith("hub.v1.") for c in body["cards"])
    assert "casino.v" not in view.text and "sncf.v" not in view.text
    assert_absent(view.content, ["10000001", "70000001"], "the hub's view")


def test_naming_the_hub_or_audit_domain_answers_like_an_unknown_domain(api: Api) -> None:
    """A partner learns nothing of the alliance's other domains from an association."""
    casino = api.headers("casino-app", "desk")
    api.http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000001"]})
    answers = {}
    for other in ("hub", "audit", "nowhere"):
        reply = api.http.post(
            "/v1/cards/associate",
            headers=casino,
            json={"card": "10000001", "other_domain": other, "other_card": "70000001"},
        )
        body = reply.json()["error"]
        answers[other] = (reply.status_code, body["code"], body["message"].replace(other, "…"))
    assert 1 == len(set(answers.values())), answers
    assert (404, "unknown_domain") == answers["hub"][:2]


def test_a_partner_sees_its_own_card_s_state_and_nothing_of_the_others(api: Api) -> None:
    casino, sncf = api.headers("casino-app"), api.headers("sncf-app")
    mine = api.http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000001"]})
    loose = api.http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000002"]})
    theirs = api.http.post("/v1/cards/enrol", headers=sncf, json={"values": ["70000001"]})
    api.http.post(
        "/v1/cards/associate",
        headers=casino,
        json={"card": "10000001", "other_domain": "sncf", "other_card": "70000001"},
    )
    [card] = mine.json()["pseudonyms"]
    state = api.http.get(f"/v1/cards/{card}", headers=casino)
    assert state.status_code == 200, state.text
    shown = state.json()
    assert (shown["linked"], shown["other_partners_cards"]) == (True, 1)
    assert (shown["attached_to"], shown["attached_here"]) == ("casino", True)
    # Nothing names the other partner's card or the hub's keys.
    assert "sncf." not in state.text and "hub." not in state.text
    [other] = theirs.json()["pseudonyms"]
    from_sncf = api.http.get(f"/v1/cards/{other}", headers=sncf).json()
    assert (from_sncf["attached_to"], from_sncf["attached_here"]) == ("casino", False)
    [alone] = loose.json()["pseudonyms"]
    assert api.http.get(f"/v1/cards/{alone}", headers=casino).json() | {"enrolled_at": 0} == {
        "enrolled_at": 0,
        "linked": False,
        "linked_at": None,
        "other_partners_cards": 0,
        "attached_to": None,
        "attached_here": False,
    }
    # Another partner's pseudonym, or a card number in the URL, is refused.
    assert api.http.get(f"/v1/cards/{other}", headers=casino).status_code in {400, 404}
    number = api.http.get("/v1/cards/10000001", headers=casino)
    assert (number.status_code, number.json()["error"]["code"]) == (400, "pseudonym_required")
    # The access log names the card by its subject reference.
    entries = api.http.get("/v1/audit/entries", headers=api.headers("dpo")).json()
    shows = [e for e in entries if e["action"] == "card_show" and e["outcome"] == "ok"]
    assert len(shows) == 3 and all(e["subject"] for e in shows)
