"""A partner's key rotation keeps the partner whole: its inbox receives the translation of every
pseudonym it holds, old version to new, and both versions resolve until the overlap ends."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from errors import KeyDestroyed, TiersError
from tests.conftest import ACCESS, Database
from tiers.admin import add_domain, initialise, retire_key, rotate_key
from tiers.cards import card_state, enrol_cards
from tiers.deployment import Deployment
from tiers.inbox import delivery_file, list_inbox
from tiers.tokenisation import pseudonymise_values

EMAILS = [f"client{n}@example.fr" for n in range(250)]
CARDS = ["10000001", "10000002"]


def _translation(deployment: Deployment, domain: str) -> list[list[str]]:
    [delivery] = [
        d for d in list_inbox(deployment, access=ACCESS, domain=domain) if d.kind == "rekey"
    ]
    assert delivery.name == "v1-to-v2" and delivery.sender == "tiers"
    with delivery_file(deployment, access=ACCESS, domain=domain, delivery_id=delivery.id) as f:
        return list(csv.reader(io.StringIO(f.read().decode("utf-8"), newline="")))


def _strings(results: list[str | TiersError]) -> list[str]:
    assert all(isinstance(r, str) for r in results)
    return [str(r) for r in results]


@pytest.fixture
def rotated(database: Database) -> Iterator[tuple[Deployment, dict[str, list[str]]]]:
    """casino's emails and cards pseudonymised under v1, then its key rotated (90 days of
    overlap, the default)."""
    settings = database.settings()
    initialise(settings, access=ACCESS)
    deployment = Deployment.open(settings)
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    add_domain(deployment, name="sncf", role="partner", access=ACCESS)
    before = {
        "email": _strings(
            pseudonymise_values(
                deployment, access=ACCESS, domain="casino", kind="email", values=EMAILS
            )
        ),
        "card": _strings(enrol_cards(deployment, access=ACCESS, domain="casino", values=CARDS)),
    }
    pseudonymise_values(deployment, access=ACCESS, domain="sncf", kind="email", values=EMAILS)
    rotate_key(deployment, access=ACCESS, domain="casino")
    yield deployment, before
    deployment.close()


def test_the_partner_receives_the_translation_of_every_pseudonym_it_holds(
    rotated: tuple[Deployment, dict[str, list[str]]],
) -> None:
    deployment, before = rotated
    after = {
        "email": _strings(
            pseudonymise_values(
                deployment, access=ACCESS, domain="casino", kind="email", values=EMAILS
            )
        ),
        "card": _strings(
            pseudonymise_values(
                deployment, access=ACCESS, domain="casino", kind="card", values=CARDS
            )
        ),
    }
    rows = _translation(deployment, "casino")
    assert rows[0] == ["old_pseudonym", "new_pseudonym"]
    expected = {
        old: new for kind in before for old, new in zip(before[kind], after[kind], strict=True)
    }
    assert all(new.startswith("casino.v2.") for new in expected.values())
    assert dict(rows[1:]) == expected  # row by row, each subject once
    assert len(rows) - 1 == len(expected)
    # sncf's key was not rotated: nothing is in its inbox.
    assert list_inbox(deployment, access=ACCESS, domain="sncf") == []


def test_both_versions_resolve_during_the_overlap_and_only_the_new_after_it(
    rotated: tuple[Deployment, dict[str, list[str]]],
) -> None:
    deployment, before = rotated
    new = {old: new for old, new in _translation(deployment, "casino")[1:]}
    old_card = before["card"][0]
    for name in (old_card, new[old_card]):
        assert card_state(deployment, access=ACCESS, domain="casino", card=name).linked is False
    with pytest.raises(TiersError) as refused:
        retire_key(deployment, access=ACCESS, domain="casino", version=1)
    assert refused.value.code == "overlap_not_over"
    later = replace(ACCESS, now=ACCESS.now + timedelta(days=91))
    retire_key(deployment, access=later, domain="casino", version=1)
    assert card_state(deployment, access=later, domain="casino", card=new[old_card]).linked is False
    with pytest.raises(KeyDestroyed):
        card_state(deployment, access=later, domain="casino", card=old_card)


def test_the_overlap_is_a_setting(database: Database) -> None:
    settings = database.settings(rotation_overlap_days=0)
    initialise(settings, access=ACCESS)
    deployment = Deployment.open(settings)
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    try:
        rotate_key(deployment, access=ACCESS, domain="casino")
        retire_key(deployment, access=ACCESS, domain="casino", version=1)  # no overlap to wait
    finally:
        deployment.close()
