"""The alliance under the ``oprf`` scheme (``tiers init --scheme oprf``), end to end against a
real ``tiers serve`` through a relay that keeps every byte sent.

SNCF's domain is blind-only: it sends blinded elements and its own blind pseudonyms, never a
card number. Casino sends clear numbers. Between them the service links the cards, keys them
for the hub, routes a campaign to the customer's SG, takes an exchange, a rotation with its
translation, a withdrawal and a crypto-shredding, and answers the auditor's subject look-up,
all from pseudonyms: SNCF's numbers never reach it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tiers_client import Client, errors
from tiers_client.identifiers import normalise
from tiers_client.models import Resolution

from tests.client.conftest import Service, serve, stop_started
from tests.conftest import Database, assert_absent
from tests.hardening.service import tiers
from tests.relay import Relay

pytestmark = pytest.mark.slow  # a real server

PURPOSE = "oprf alliance tests"
SNCF_CARDS = ["7000 0000 0001", "7000 0000 0002"]
CASINO_CARDS = ["10000001", "10000002"]
SNCF_FORMS = sorted({*SNCF_CARDS, *(normalise("card", c) for c in SNCF_CARDS)})
ELEMENT_PSEUDONYM = re.compile(r"(casino|sncf|hub)\.v[0-9]+\.[a-z2-7]{52}")


@dataclass
class Alliance:
    service: Service
    relay: Relay
    output: Path

    def client(self, name: str) -> Client:
        return Client(f"http://127.0.0.1:{self.relay.port}", self.service.keys[name],
                      purpose=PURPOSE)  # fmt: skip

    def operator(self, *args: str) -> str:
        return tiers(*args, env={**self.service.env, "TIERS_PURPOSE": PURPOSE})


@pytest.fixture
def alliance(database: Database, tmp_path: Path) -> Iterator[Alliance]:
    output = tmp_path / "server.out"
    service = serve(database, output, init=["--scheme", "oprf"], blind_only=["sncf"])
    relay = Relay("127.0.0.1", int(service.url.rsplit(":", 1)[1]))
    yield Alliance(service, relay, output)
    relay.cut()
    stop_started()


def _inbox_rows(client: Client, kind: str, folder: Path) -> list[list[str]]:
    """The rows of the newest delivery of ``kind`` in the client's inbox (header first)."""
    delivery = [d for d in client.inbox() if d.kind == kind][-1]
    target = folder / f"{delivery.id}.csv"
    client.download_delivery(delivery.id, target)
    return [line.split(",") for line in target.read_text().splitlines()]


def _linked(alliance: Alliance) -> tuple[list[str], str]:
    """SNCF enrols its cards by their blind pseudonyms, casino by number, and the customer's
    two cards are linked at SNCF's desk. SNCF's pseudonyms, and casino's of its card."""
    with alliance.client("sncf-app") as sncf, alliance.client("casino-app") as casino:
        assert sncf.blind_keys().scheme == "oprf"  # its blind pseudonyms are its domain's
        blind = [str(p) for p in sncf.blind_pseudonymise("card", SNCF_CARDS)]
        assert all(ELEMENT_PSEUDONYM.fullmatch(p) for p in blind), blind
        assert sncf.enrol_cards(blind) == blind  # its own pseudonyms, in the active version
        with pytest.raises(errors.BlindOnlyError):
            sncf.enrol_cards(["7000 0000 0003"])  # no clear number of a blind-only domain
        [card] = casino.enrol_cards([CASINO_CARDS[0]])
        assert isinstance(card, str) and ELEMENT_PSEUDONYM.fullmatch(card)
        # The service's pseudonym of a clear number is the one blinding gives.
        assert [str(p) for p in casino.blind_pseudonymise("card", [CASINO_CARDS[0]])] == [card]
        outcome = sncf.associate(blind[0], "casino", CASINO_CARDS[0])
        assert (outcome.rule, outcome.attached_here) == ("attach.first_enrolment", False)
        state = casino.card_state(card)
        assert (state.linked, state.other_partners_cards, state.attached_to) == (True, 1, "casino")
    return blind, card


def _hub_key(alliance: Alliance, blind: list[str], folder: Path) -> str:
    """SNCF's exchange of its blind pseudonyms reaches the hub as linking keys; the hub
    resolves the customer and routes a campaign to the SG, in the SG's own pseudonyms."""
    month = folder / "points.csv"
    month.write_text(f"card,date,points,operation\n{blind[0]},2026-11-02,120,earn\n"
                     f"{blind[1]},2026-11-03,40,earn\n")  # fmt: skip
    with alliance.client("sncf-app") as sncf, alliance.client("hub-app") as hub:
        report = sncf.send_exchange(month, "points")
        assert (report.rows_out, report.rows_rejected) == (2, 0)
        rows = _inbox_rows(hub, "exchange", folder)
        keys = [row[0] for row in rows[1:]]
        assert len(set(keys)) == 2 and all(k.startswith("hub.v1.") for k in keys)
        resolved = hub.resolve(keys)
        linked = [r for r in resolved if isinstance(r, Resolution) and r.attached_to]
        assert len(linked) == 1 and sorted(c.partner for c in linked[0].cards) == [
            "casino",
            "sncf",
        ]
        key = next(k for k, r in zip(keys, resolved, strict=True) if r in linked)
        assert hub.send_campaign("xmas", keys).per_sg == {"casino": 1}
    return key


def _rotated(alliance: Alliance, blind: list[str]) -> str:
    """SNCF's key rotated: its old blind pseudonyms are translated without the numbers, to
    what blinding now gives, and both name the card."""
    alliance.operator("key", "rotate", "sncf")
    with alliance.client("sncf-app") as sncf:
        [moved] = sncf.blind_translate([blind[0]])
        assert str(moved).startswith("sncf.v2.")
        assert [str(p) for p in sncf.blind_pseudonymise("card", [SNCF_CARDS[0]])] == [str(moved)]
        assert sncf.card_state(str(moved)).linked and sncf.card_state(blind[0]).linked
    return str(moved)


def test_the_alliance_runs_on_pseudonyms_alone(
    alliance: Alliance, database: Database, tmp_path: Path
) -> None:
    blind, card = _linked(alliance)
    key = _hub_key(alliance, blind, tmp_path)
    with alliance.client("casino-app") as casino:
        assert _inbox_rows(casino, "campaign", tmp_path)[1:] == [[card]]
    with alliance.client("dpo") as dpo:
        found = {e["action"] for e in dpo.audit_subject("sncf", "card", blind[0])}
        assert {"card_enrol", "card_associate", "exchange_send"} <= found, found
    moved = _rotated(alliance, blind)
    with alliance.client("casino-app") as casino, alliance.client("hub-app") as hub:
        assert casino.withdraw(card) >= 2  # the customer's key and its cards'
        notice = _inbox_rows(hub, "withdrawal", tmp_path)
        assert key in {row[0] for row in notice[1:]}
    alliance.operator("key", "destroy", "sncf", "--version", "1", "--yes")
    with alliance.client("sncf-app") as sncf:
        with pytest.raises(errors.KeyDestroyedError):
            sncf.card_state(blind[0])
        assert not sncf.card_state(moved).linked  # withdrawn: enrolled, linked to no one
    _nothing_clear(alliance, database)


def _nothing_clear(alliance: Alliance, database: Database) -> None:
    """SNCF's numbers, as written and canonical, were never sent, answered, stored, logged or
    printed."""
    assert b"POST /v1/blind/evaluate" in alliance.relay.upstream
    where: list[tuple[Any, str]] = [
        (bytes(alliance.relay.upstream), "the requests the service received"),
        (bytes(alliance.relay.downstream), "the service's answers"),
        (database.stored_bytes(), "the database"),
        (repr(database.audit_entries()).encode(), "the access log"),
        (alliance.output.read_bytes(), "the server's output"),
        (b"".join(p.read_bytes() for p in database.home.rglob("*") if p.is_file()),
         "the service's files"),
    ]  # fmt: skip
    for haystack, name in where:
        assert_absent(haystack, SNCF_FORMS, name)
