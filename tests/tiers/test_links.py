"""Card links end to end on the real database: enrol, associate, dissociate, transfer, resolve."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from errors import DomainMismatch, NotFound, PolicyViolation
from keys import Keyring, length_prefixed, new_key_material
from tests.conftest import ACCESS, PARTNERS, Database, assert_absent, statements
from tiers import tokenisation
from tiers.admin import add_domain, initialise
from tiers.audit_ops import lookup_subject, verify_stored
from tiers.auditing import Access
from tiers.cards import card_ref, card_refs, enrol_cards
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, tokenise_file
from tiers.inbox import list_inbox
from tiers.links import associate, dissociate, transfer
from tiers.pseudonyms import Pseudonym, base_pseudonym
from tiers.resolution import Resolution, resolve
from tiers.storage.database import alembic_config
from tiers.storage.tables import hub_keys, metadata
from tiers.tokenisation import pseudonymise_values


def at(days: int) -> Access:
    return replace(ACCESS, now=ACCESS.now + timedelta(days=days))


def link_two_cards(deployment: Deployment) -> None:
    """Casino card 10000001 (day 1) and SNCF card 70000001 (day 2), associated at the casino
    desk on day 3."""
    enrol_cards(deployment, access=at(1), domain="casino", values=["10000001"])
    enrol_cards(deployment, access=at(2), domain="sncf", values=["70000001"])
    associate(
        deployment,
        access=at(3),
        domain="casino",
        card="10000001",
        other_domain="sncf",
        other_card="70000001",
    )


def hub_key(deployment: Deployment, partner: str, number: str) -> str:
    with deployment.engine.connect() as connection:
        base = base_pseudonym(deployment.base_keyring(connection).active, "card", number)
        ref = card_ref(deployment.base_keyring(connection).active, partner, base)
        version, value = connection.execute(
            select(hub_keys.c.version, hub_keys.c.value).where(hub_keys.c.ref == ref)
        ).one()
    return str(Pseudonym("hub", version, value))


def hub_view(deployment: Deployment, partner: str, number: str) -> Resolution:
    hub = replace(ACCESS, role="hub", domain="hub", actor="hub-app")
    (result,) = resolve(deployment, access=hub, linking_keys=[hub_key(deployment, partner, number)])
    assert isinstance(result, Resolution)
    return result


def test_a_customer_links_cards_moves_sg_and_unlinks(
    alliance: Deployment, database: Database
) -> None:
    dep = alliance
    pseudonymise_values(dep, access=at(0), domain="sncf", kind="card", values=["70000001"])
    enrol_cards(dep, access=at(1), domain="casino", values=["10000001"])
    enrol_cards(dep, access=at(2), domain="galeries-lafayette", values=["20000001"])
    # At the casino desk: the casino card and the SNCF card are linked; casino is the SG.
    outcome = associate(
        dep,
        access=at(3),
        domain="casino",
        card="10000001",
        other_domain="sncf",
        other_card="70000001",
    )
    assert ("attach.first_enrolment", True) == (outcome.rule, outcome.attached_here)
    view = hub_view(dep, "sncf", "70000001")
    assert ("casino", {"casino", "sncf"}) == (view.attached_to, {c.partner for c in view.cards})
    assert view.alliance_key and view.alliance_key.startswith("hub.v1.")
    assert view == hub_view(dep, "casino", "10000001")
    # The Galeries Lafayette card joins; the customer then moves to Galeries Lafayette.
    associate(
        dep,
        access=at(4),
        domain="galeries-lafayette",
        card="20000001",
        other_domain="casino",
        other_card="10000001",
    )
    moved = transfer(dep, access=at(5), domain="galeries-lafayette", card="20000001")
    assert ("transfer.customer_choice", True) == (moved.rule, moved.attached_here)
    assert "galeries-lafayette" == hub_view(dep, "casino", "10000001").attached_to
    with pytest.raises(PolicyViolation) as too_soon:
        transfer(dep, access=at(6), domain="casino", card="10000001")
    assert "transfer.too_soon" == too_soon.value.code
    possible = (at(5).now + timedelta(days=90)).date().isoformat()  # the policy's 90 days
    assert too_soon.value.message.endswith(f"possible from {possible}")
    # Dissociating the attaching card re-attaches to the oldest remaining eligible card.
    out = dissociate(dep, access=at(7), domain="galeries-lafayette", card="20000001")
    assert "reattach.oldest_card" == out.rule
    assert "casino" == hub_view(dep, "sncf", "70000001").attached_to
    # One card left: the customer is dissolved and the hub sees loose cards.
    assert "unlink.dissolve" == dissociate(dep, access=at(8), domain="sncf", card="70000001").rule
    assert None is hub_view(dep, "casino", "10000001").attached_to
    entries = database.audit_entries()
    refusal = next(e for e in entries if e.outcome == "denied")
    assert ("customer_transfer", "transfer.too_soon") == (refusal.action, refusal.code)
    assert refusal.subject and refusal.detail["policy_version"].startswith("sha256:")
    assert_absent(database.stored_bytes(), ["10000001", "20000001", "70000001"], "the database")


def test_bad_requests_are_refused_clearly_and_change_nothing(
    alliance: Deployment, database: Database
) -> None:
    dep = alliance
    enrol_cards(dep, access=at(1), domain="casino", values=["10000001"])
    (sncf_pseudonym,) = enrol_cards(dep, access=at(2), domain="sncf", values=["70000001"])
    before = database.rows()
    with pytest.raises(NotFound) as unknown:
        associate(
            dep,
            access=at(3),
            domain="casino",
            card="99999999",
            other_domain="sncf",
            other_card="70000001",
        )
    assert "unknown_card" == unknown.value.code
    with pytest.raises(NotFound):  # another partner's card presented as one's own
        associate(
            dep,
            access=at(3),
            domain="casino",
            card="70000001",
            other_domain="sncf",
            other_card="70000001",
        )
    with pytest.raises(PolicyViolation) as itself:
        associate(
            dep,
            access=at(3),
            domain="casino",
            card="10000001",
            other_domain="casino",
            other_card="10000001",
        )
    assert "association_refused" == itself.value.code
    assert "link.same_card" == database.audit_entries()[-1].code  # the log says why
    with pytest.raises(DomainMismatch):
        associate(
            dep,
            access=at(3),
            domain="casino",
            card=str(sncf_pseudonym),
            other_domain="sncf",
            other_card="70000001",
        )
    assert before == database.rows()
    # A partner's own pseudonym works as well as the clear number.
    (casino_pseudonym,) = pseudonymise_values(
        dep, access=at(4), domain="casino", kind="card", values=["10000001"]
    )
    outcome = associate(
        dep,
        access=at(4),
        domain="casino",
        card=str(casino_pseudonym),
        other_domain="sncf",
        other_card="70000001",
    )
    assert "attach.first_enrolment" == outcome.rule
    assert (
        "link.already_linked"
        == associate(
            dep,
            access=at(5),
            domain="casino",
            card="10000001",
            other_domain="sncf",
            other_card="70000001",
        ).rule
    )


def test_tokenising_a_card_file_enrols_the_cards(alliance: Deployment, tmp_path: object) -> None:
    directory = Path(str(tmp_path))
    (directory / "in.csv").write_text("card,amount\n10000001,1\n10000002,2\n")
    tokenise_file(
        alliance,
        access=at(1),
        source=directory / "in.csv",
        output=directory / "out.csv",
        domain="casino",
        columns=[ColumnSpec("card", "card")],
    )
    enrol_cards(alliance, access=at(2), domain="sncf", values=["70000001"])
    outcome = associate(
        alliance,
        access=at(3),
        domain="sncf",
        card="70000001",
        other_domain="casino",
        other_card="10000002",
    )
    assert ("attach.first_enrolment", False) == (outcome.rule, outcome.attached_here)


def test_a_hub_created_after_enrolment_gets_keys_for_every_card(deployment: Deployment) -> None:
    for name in ("casino", "sncf"):
        add_domain(deployment, access=ACCESS, name=name, role="partner")
    link_two_cards(deployment)
    add_domain(deployment, access=at(4), name="hub", role="hub")
    view = hub_view(deployment, "sncf", "70000001")
    assert ("casino", {"casino", "sncf"}) == (view.attached_to, {c.partner for c in view.cards})
    assert view.alliance_key is not None


def test_a_merge_tells_the_hub_which_key_replaces_the_absorbed_customers(
    alliance: Deployment,
) -> None:
    dep = alliance
    for day, (partner, number) in enumerate(
        [
            ("casino", "10000001"),
            ("sncf", "70000001"),
            ("galeries-lafayette", "20000001"),
            ("caisse-epargne", "30000001"),
        ]
    ):
        enrol_cards(dep, access=at(day), domain=partner, values=[number])
    associate(
        dep,
        access=at(5),
        domain="casino",
        card="10000001",
        other_domain="sncf",
        other_card="70000001",
    )
    associate(
        dep,
        access=at(6),
        domain="galeries-lafayette",
        card="20000001",
        other_domain="caisse-epargne",
        other_card="30000001",
    )
    absorbed = hub_view(dep, "galeries-lafayette", "20000001").alliance_key
    associate(
        dep,
        access=at(7),
        domain="casino",
        card="10000001",
        other_domain="galeries-lafayette",
        other_card="20000001",
    )
    survivor = hub_view(dep, "caisse-epargne", "30000001")
    assert 4 == len(survivor.cards) and survivor.alliance_key != absorbed
    (notice,) = [
        d
        for d in list_inbox(dep, access=replace(ACCESS, role="hub", domain="hub"))
        if d.kind == "merge"
    ]
    rows = dep.files.read_bytes(f"inbox/{notice.id}.csv").decode().splitlines()
    assert ["old_linking_key,new_linking_key", f"{absorbed},{survivor.alliance_key}"] == rows
    hub = replace(ACCESS, role="hub", domain="hub", actor="hub-app")
    (gone,) = resolve(dep, access=hub, linking_keys=[str(absorbed)])
    assert "unknown_key" == getattr(gone, "code", None)


def test_a_subject_look_up_follows_the_cards_linked_to_the_customer(
    alliance: Deployment, database: Database
) -> None:
    dep = alliance
    auditor = replace(ACCESS, role="auditor", actor="dpo")
    enrol_cards(dep, access=at(1), domain="casino", values=["10000001"])
    enrol_cards(dep, access=at(2), domain="sncf", values=["70000001"])
    enrol_cards(dep, access=at(3), domain="galeries-lafayette", values=["20000001"])  # someone else

    def actions(domain: str, number: str) -> list[tuple[str, tuple[str, ...]]]:
        found = lookup_subject(dep, access=auditor, domain=domain, kind="card", value=number)
        return [(e.action, e.domains) for e in found if e.action != "audit_subject"]

    assert [("card_enrol", ("sncf",))] == actions("sncf", "70000001")
    # Recorded under the casino card, presented at the casino desk: it concerns the SNCF card's
    # holder too, as does the hub's resolution of the customer through the casino card's key.
    associate(
        dep,
        access=at(4),
        domain="casino",
        card="10000001",
        other_domain="sncf",
        other_card="70000001",
    )
    hub_view(dep, "casino", "10000001")
    customer = [
        ("card_enrol", ("casino",)),
        ("card_enrol", ("sncf",)),
        ("card_associate", ("casino", "sncf")),
        ("link_resolve", ("hub",)),
    ]
    assert customer == actions("sncf", "70000001")
    assert customer == actions("casino", "10000001")
    assert 1 == database.audit_entries()[-1].detail["linked_cards"]
    assert [("card_enrol", ("galeries-lafayette",))] == actions("galeries-lafayette", "20000001")
    # The links followed are those of the time of the look-up: once the cards are unlinked,
    # each is a customer of its own again. The association still names both cards, so each
    # card's look-up finds it; the hub's resolution through the casino card's key does not
    # name the SNCF card, and is the casino card's only.
    dissociate(dep, access=at(5), domain="sncf", card="70000001")
    assert [
        ("card_enrol", ("sncf",)),
        ("card_associate", ("casino", "sncf")),
        ("card_dissociate", ("sncf",)),
    ] == actions("sncf", "70000001")
    assert [
        ("card_enrol", ("casino",)),
        ("card_associate", ("casino", "sncf")),
        ("link_resolve", ("hub",)),
    ] == actions("casino", "10000001")


def test_migration_0009_makes_the_other_card_of_earlier_associations_searchable(
    alliance: Deployment, database: Database
) -> None:
    """A deployment at 0008 upgrades in place: the other card of each association already
    logged goes into the searchable column, and the log still verifies."""
    dep = alliance
    auditor = replace(ACCESS, role="auditor", actor="dpo")
    link_two_cards(dep)
    dissociate(dep, access=at(4), domain="sncf", card="70000001")
    with dep.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0008")
    initialise(database.settings(), access=ACCESS)  # the upgrade: migrations, then seals
    with dep.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    found = lookup_subject(dep, access=auditor, domain="sncf", kind="card", value="70000001")
    assert ["card_enrol", "card_associate", "card_dissociate"] == [
        e.action for e in found if e.action != "audit_subject"
    ]
    written = len(database.audit_entries())
    assert written == verify_stored(dep, access=auditor).entries


@given(
    partner=st.sampled_from(PARTNERS),
    bases=st.lists(st.binary(min_size=32, max_size=32), max_size=20),
)
def test_card_refs_is_card_ref_of_each_base(partner: str, bases: list[bytes]) -> None:
    """Both are the stored construction, HMAC(K_base, "card at partner" | partner | B), each
    field length-prefixed: a change would orphan every stored card."""
    key = Keyring.create(
        owner="_service", purpose="base", material=new_key_material(), now=ACCESS.now
    ).active
    defined = [
        key.mac(length_prefixed(b"tiers card at partner v1", partner.encode(), base))
        for base in bases
    ]
    assert [card_ref(key, partner, base) for base in bases] == defined
    assert card_refs(key, partner, bases) == defined


@pytest.mark.parametrize("held_from", [1, 10**9])
def test_a_large_batch_registers_and_enrols_as_a_small_one_does(
    alliance: Deployment, database: Database, monkeypatch: pytest.MonkeyPatch, held_from: int
) -> None:
    """A batch of at least HELD_FROM_VALUES values registers through held, sorted inserts:
    the same pseudonyms, and every card registered, enrolled and keyed for the hub once."""
    monkeypatch.setattr(tokenisation, "HELD_FROM_VALUES", held_from)
    cards = [f"4970{n:011d}" for n in range(20)]
    values = [*cards, "1234", cards[0]]  # an invalid number, and a card given twice
    casino = at(1)
    linked = ("subjects", "pseudonym_index", "cards", "hub_keys")

    def sizes() -> dict[str, int]:
        return {table: len(rows) for table, rows in database.rows().items() if table in linked}

    before = sizes()
    answers = pseudonymise_values(
        alliance, access=casino, domain="casino", kind="card", values=values
    )
    assert {table: before[table] + len(cards) for table in linked} == sizes()
    unregistered = pseudonymise_values(
        alliance, access=casino, domain="casino", kind="card", values=values, register=False
    )
    assert [str(a) for a in unregistered] == [str(a) for a in answers]
    assert "bad_length" == getattr(answers[-2], "code", None)
    with_hub = hub_view(alliance, "casino", cards[7])
    assert {"casino"} == {card.partner for card in with_hub.cards}


def test_every_refusal_of_an_association_does_the_same_work(
    alliance: Deployment, database: Database
) -> None:
    """The timing class of a refusal: whether the other partner's card is not enrolled, is
    linked to another of the requester's cards, or is loose while the requester's customer
    already has a card there, the service sends the database the same statements, in the same
    order, before it answers the same refusal. Only the log's reason differs."""
    enrol_cards(alliance, access=at(1), domain="casino", values=["10000001", "10000002"])
    enrol_cards(alliance, access=at(1), domain="sncf", values=["70000001", "70000002"])
    refusals: dict[str, list[str]] = {}

    def refused(reason: str, card: str, other: str) -> None:
        with statements(alliance, "") as sent, pytest.raises(PolicyViolation) as error:
            associate(
                alliance,
                access=at(3),
                domain="casino",
                card=card,
                other_domain="sncf",
                other_card=other,
            )
        logged = database.audit_entries()[-1]
        assert ("association_refused", "denied", reason) == (
            error.value.code,
            logged.outcome,
            logged.code,
        )
        refusals[reason] = sent

    associate(
        alliance,
        access=at(2),
        domain="casino",
        card="10000001",
        other_domain="sncf",
        other_card="70000001",
    )
    refused("unknown_other_card", "10000002", "79999999")  # warms the caches once
    refused("unknown_other_card", "10000002", "79999999")
    unknown = refusals.pop("unknown_other_card")
    refused("link.one_card_per_partner", "10000002", "70000001")  # linked to 10000001
    linked_elsewhere = refusals.pop("link.one_card_per_partner")
    refused("link.one_card_per_partner", "10000001", "70000002")  # loose; 10000001 has one
    loose = refusals.pop("link.one_card_per_partner")
    assert unknown and unknown == linked_elsewhere == loose
