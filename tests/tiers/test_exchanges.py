"""Exchanges end to end: four partners and the hub; campaigns; withdrawal."""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errors import InvalidFile, KeyStateError, NotFound, PolicyViolation
from policy.exchanges import TYPES, ExchangeSchema, check_value, row_problems
from tests.conftest import ACCESS, PARTNERS, Database, assert_absent
from tiers.admin import retire_key, rotate_key
from tiers.auditing import Access
from tiers.campaigns import send_campaign
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange, withdraw_customer
from tiers.inbox import ack_delivery, delivery_file, list_inbox, purge_inbox, recover_inbox
from tiers.links import associate
from tiers.resolution import Resolution, resolve
from tiers.tokenisation import pseudonymise_values

HUB = replace(ACCESS, actor="hub-app", role="hub", domain="hub")


def at(days: int, **changes: object) -> Access:
    return replace(ACCESS, now=ACCESS.now + timedelta(days=days), **changes)  # type: ignore[arg-type]


def partner(name: str, days: int = 0) -> Access:
    return at(days, actor=f"{name}-app", role="partner", domain=name)


@pytest.fixture
def alliance(alliance: Deployment) -> Deployment:
    """The shared alliance (tests/conftest.py) with two customers' cards linked."""
    deployment = alliance
    # Customer X: a Casino card and an SNCF card, linked at the Casino desk (Casino is the SG).
    enrol_cards(deployment, access=partner("casino", 1), domain="casino", values=["10000001"])
    enrol_cards(deployment, access=partner("sncf", 2), domain="sncf", values=["70000001"])
    associate(
        deployment,
        access=partner("casino", 3),
        domain="casino",
        card="10000001",
        other_domain="sncf",
        other_card="70000001",
    )
    # Customer Y: Galeries Lafayette and Caisse d'Epargne cards (Galeries Lafayette enrolled first).
    enrol_cards(
        deployment,
        access=partner("galeries-lafayette", 4),
        domain="galeries-lafayette",
        values=["20000001"],
    )
    enrol_cards(
        deployment,
        access=partner("caisse-epargne", 5),
        domain="caisse-epargne",
        values=["30000001"],
    )
    associate(
        deployment,
        access=partner("caisse-epargne", 6),
        domain="caisse-epargne",
        card="30000001",
        other_domain="galeries-lafayette",
        other_card="20000001",
    )
    return deployment


def read(deployment: Deployment, access: Access, delivery_id: str) -> list[list[str]]:
    with delivery_file(deployment, access=access, delivery_id=delivery_id) as handle:
        return list(csv.reader(io.StringIO(handle.read().decode())))


def send(deployment: Deployment, who: str, content: str, kind: str = "purchases") -> object:
    return send_exchange(
        deployment,
        access=partner(who, 10),
        domain=who,
        exchange_type=kind,
        source=io.BytesIO(content.encode()),
    )


def test_one_customers_purchases_from_two_partners_arrive_under_one_key(
    alliance: Deployment, database: Database
) -> None:
    send(alliance, "casino", "card,date,amount,store\n10000001,2026-11-02,12.50,C-042\n")
    send(alliance, "sncf", "card,date,amount\n70000001,2026-11-03,80.00\n")
    deliveries = list_inbox(alliance, access=HUB)
    assert ["exchange", "exchange"] == [d.kind for d in deliveries]
    by_sender = {d.sender: d for d in deliveries}
    casino_rows = read(alliance, HUB, by_sender["casino"].id)
    sncf_rows = read(alliance, HUB, by_sender["sncf"].id)
    assert ["linking_key", "date", "amount", "store"] == casino_rows[0]
    assert casino_rows[1][0] == sncf_rows[1][0]  # one customer key for the two cards
    (view,) = resolve(alliance, access=HUB, linking_keys=[casino_rows[1][0]])
    assert isinstance(view, Resolution) and "casino" == view.attached_to
    hub_bytes = b"".join(alliance.files.read_bytes(f"inbox/{d.id}.csv") for d in deliveries)
    assert b"casino.v" not in hub_bytes and b"sncf.v" not in hub_bytes
    assert_absent(hub_bytes, ["10000001", "70000001"], "the hub's deliveries")
    ack_delivery(alliance, access=HUB, delivery_id=by_sender["casino"].id)
    assert [by_sender["sncf"].id] == [d.id for d in list_inbox(alliance, access=HUB)]


def test_bad_values_are_rejected_per_row_and_undeclared_columns_refuse_the_file(
    alliance: Deployment,
) -> None:
    report = send(
        alliance,
        "casino",
        "card,date,amount\n10000001,2026-13-01,1\nnope,2026-11-01,2\n10000001,2026-11-01,3.5\n",
    )
    assert (3, 1, 2) == (report.rows_in, report.rows_out, report.rows_rejected)  # type: ignore[attr-defined]
    (rejects,) = list_inbox(alliance, access=partner("casino"))
    assert [
        ["line", "column", "code"],
        ["2", "date", "bad_date"],
        ["3", "card", "bad_character"],
    ] == read(alliance, partner("casino"), rejects.id)
    before = len(list_inbox(alliance, access=HUB))
    with pytest.raises(InvalidFile) as refused:
        send(alliance, "casino", "card,date,name\n10000001,2026-11-01,Jean\n")
    assert "undeclared_column" == refused.value.code
    assert before == len(list_inbox(alliance, access=HUB))


def test_a_row_rejected_for_its_payload_registers_and_enrols_nothing(
    alliance: Deployment, database: Database
) -> None:
    """Its card is checked (a problem with it is still listed, first), but not registered
    or enrolled: a later row naming the card by its pseudonym does not find it."""
    (pseudonym,) = pseudonymise_values(
        alliance, access=partner("casino"), domain="casino", kind="card", values=["10000555"],
        register=False,
    )  # fmt: skip
    linked = ("subjects", "pseudonym_index", "cards", "hub_keys")
    before = {table: rows for table, rows in database.rows().items() if table in linked}
    report = send(
        alliance,
        "casino",
        f"card,date,amount\n10000555,2026-11-01,x\n{pseudonym},2026-11-01,2\nnope,2026-13-01,1\n",
    )
    assert (3, 0, 3) == (report.rows_in, report.rows_out, report.rows_rejected)  # type: ignore[attr-defined]
    (rejects,) = list_inbox(alliance, access=partner("casino"))
    assert [
        ["line", "column", "code"],
        ["2", "amount", "bad_decimal"],
        ["3", "card", "unknown_pseudonym"],
        ["4", "card", "bad_character"],
        ["4", "date", "bad_date"],
    ] == read(alliance, partner("casino"), rejects.id)
    assert before == {table: rows for table, rows in database.rows().items() if table in linked}


def test_a_campaign_reaches_each_sg_with_exactly_its_customers(alliance: Deployment) -> None:
    send(alliance, "sncf", "card,date,amount\n70000001,2026-11-03,80.00\n")
    send(alliance, "caisse-epargne", "card,date,amount\n30000001,2026-11-03,5\n")
    enrol_cards(alliance, access=partner("sncf", 7), domain="sncf", values=["70000009"])
    send(alliance, "sncf", "card,date,amount\n70000009,2026-11-04,1\n")  # a loose card: no SG
    keys = [read(alliance, HUB, d.id)[1][0] for d in list_inbox(alliance, access=HUB)]
    report = send_campaign(
        alliance,
        access=HUB,
        name="christmas",
        linking_keys=[*keys, "hub.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "junk"],
    )
    assert {"casino": 1, "galeries-lafayette": 1} == report.per_sg
    assert {"no_sg": 1, "unknown": 1, "malformed": 1} == report.dropped
    (casino_list,) = [
        d for d in list_inbox(alliance, access=partner("casino")) if d.kind == "campaign"
    ]
    rows = read(alliance, partner("casino"), casino_list.id)
    casino_card = enrol_cards(
        alliance, access=partner("casino", 20), domain="casino", values=["10000001"]
    )[0]
    assert [["pseudonym"], [casino_card]] == rows
    assert [] == [d for d in list_inbox(alliance, access=partner("sncf")) if d.kind == "campaign"]


def test_a_customer_named_twice_is_delivered_once_and_counted(alliance: Deployment) -> None:
    """Through the customer's key and one of its cards' keys: one row, and the second key
    accounted for as ``same_customer``, not lost silently."""
    send(alliance, "casino", "card,date,amount\n10000001,2026-11-02,1\n")
    key = read(alliance, HUB, list_inbox(alliance, access=HUB)[0].id)[1][0]
    (seen,) = resolve(alliance, access=HUB, linking_keys=[key])
    assert isinstance(seen, Resolution) and seen.alliance_key is not None
    card_keys = [c.linking_key for c in seen.cards]
    report = send_campaign(
        alliance, access=HUB, name="twice", linking_keys=[seen.alliance_key, card_keys[0]]
    )
    assert seen.attached_to is not None
    assert ({seen.attached_to: 1}, {"same_customer": 1}) == (report.per_sg, report.dropped)


def test_a_withdrawn_customer_disappears_from_resolution_and_campaigns(
    alliance: Deployment,
) -> None:
    send(alliance, "casino", "card,date,amount\n10000001,2026-11-02,1\n")
    (delivery,) = list_inbox(alliance, access=HUB)
    key = read(alliance, HUB, delivery.id)[1][0]
    with pytest.raises(PolicyViolation) as not_sg:
        withdraw_customer(alliance, access=partner("sncf", 11), domain="sncf", card="70000001")
    assert "withdraw.not_sg" == not_sg.value.code
    withdrawn = withdraw_customer(
        alliance, access=partner("casino", 11), domain="casino", card="10000001"
    )
    assert 3 == withdrawn  # the customer key and its two card keys
    (gone,) = resolve(alliance, access=HUB, linking_keys=[key])
    assert "unknown_key" == getattr(gone, "code", None)
    again = withdraw_customer(
        alliance, access=partner("casino", 12), domain="casino", card="10000001"
    )
    notice = [d for d in list_inbox(alliance, access=HUB) if d.kind == "withdrawal"]
    assert (0, 1) == (again, len(notice))  # no second, empty notice
    assert key in [row[0] for row in read(alliance, HUB, notice[0].id)[1:]]
    report = send_campaign(alliance, access=HUB, name="after", linking_keys=[key])
    assert ({}, {"unknown": 1}) == (report.per_sg, report.dropped)
    later = send(alliance, "casino", "card,date,amount\n10000001,2026-11-20,1\n")
    assert 1 == later.rows_rejected  # type: ignore[attr-defined]
    keys = [row[0] for row in read(alliance, HUB, notice[0].id)[1:]]
    assert all(
        getattr(r, "code", None) == "unknown_key"
        for r in resolve(alliance, access=HUB, linking_keys=keys)
    )


@given(kind=st.sampled_from(sorted(TYPES)), value=st.text(max_size=40))
def test_no_type_accepts_control_characters_or_emptiness(kind: str, value: str) -> None:
    if check_value(kind, value):
        assert value and all(c.isprintable() for c in value)


def test_hub_rotation_translates_every_key_and_retiring_ends_the_overlap(
    alliance: Deployment,
) -> None:
    send(alliance, "casino", "card,date,amount\n10000001,2026-11-02,1\n")
    send(alliance, "caisse-epargne", "card,date,amount\n30000001,2026-11-02,1\n")
    old_keys = sorted({read(alliance, HUB, d.id)[1][0] for d in list_inbox(alliance, access=HUB)})
    before = {k: resolve(alliance, access=HUB, linking_keys=[k])[0] for k in old_keys}
    rotation = rotate_key(alliance, access=at(30), domain="hub")
    assert (1, 2) == (rotation.old_version, rotation.new_version)
    (translation,) = [d for d in list_inbox(alliance, access=HUB) if d.kind == "rekey"]
    pairs = dict(read(alliance, HUB, translation.id)[1:])
    assert set(old_keys) <= set(pairs)
    for old in old_keys:
        new = pairs[old]
        assert new.startswith("hub.v2.")
        (old_view,) = resolve(alliance, access=HUB, linking_keys=[old])
        (new_view,) = resolve(alliance, access=HUB, linking_keys=[new])
        assert isinstance(old_view, Resolution) and isinstance(new_view, Resolution)
        assert (
            (old_view.attached_to, [c.partner for c in old_view.cards])
            == (new_view.attached_to, [c.partner for c in new_view.cards])
            == (before[old].attached_to, [c.partner for c in before[old].cards])
        )  # type: ignore[union-attr]
        assert new_view.alliance_key and new_view.alliance_key.startswith("hub.v2.")
    # Sent during the overlap (keys of both versions stored): the new version's keys.
    report = send(
        alliance, "casino", "card,date,amount\n10000001,2026-11-03,1\n10000002,2026-11-03,1\n"
    )
    sent = [row[0] for row in read(alliance, HUB, report.delivery)[1:]]  # type: ignore[attr-defined]
    assert sent[0] in pairs.values()  # the card's key translated by the rotation
    assert sent[1] not in pairs.values()  # a card enrolled since, keyed in the new version
    assert sent[1].startswith("hub.v2.")
    with pytest.raises(KeyStateError) as early:
        retire_key(alliance, access=at(31), domain="hub", version=1)
    assert "overlap_not_over" == early.value.code
    retire_key(alliance, access=at(130), domain="hub", version=1)
    assert all(
        getattr(r, "code", None) == "key_destroyed"
        for r in resolve(alliance, access=HUB, linking_keys=old_keys)
    )
    assert all(
        isinstance(r, Resolution)
        for r in resolve(alliance, access=HUB, linking_keys=[pairs[k] for k in old_keys])
    )


values = st.one_of(
    st.sampled_from(
        [
            "2026-11-02",
            "2026-02-30",
            "12.50",
            "-3",
            "1e3",
            "C-042",
            "c-042",
            "food",
            "Food",
            "",
            "x\ny",
        ]
    ),
    st.text(max_size=6),
)


@given(rows=st.lists(st.tuples(values, values, values), min_size=1, max_size=12))
def test_a_row_passes_exactly_when_every_value_fits_its_type(
    rows: list[tuple[str, str, str]],
) -> None:
    schema = ExchangeSchema(
        "purchases", "card", "card", {"date": "date", "amount": "decimal", "store": "store_code"}
    )
    header = ["card", "date", "amount", "store"]
    for date_, amount, store in rows:
        problems = row_problems(["10000001", date_, amount, store], header, 0, schema)
        expected = [
            (name, f"bad_{kind}")
            for name, kind, value in (
                ("date", "date", date_),
                ("amount", "decimal", amount),
                ("store", "store_code", store),
            )
            if not check_value(kind, value)
        ]
        assert expected == problems


def test_no_partner_delivery_holds_another_partners_pseudonyms(
    alliance: Deployment, database: Database
) -> None:
    send(alliance, "casino", "card,date,amount\n10000001,2026-11-02,1\n")
    send(alliance, "caisse-epargne", "card,date,amount\n30000001,2026-11-02,1\n")
    keys = [read(alliance, HUB, d.id)[1][0] for d in list_inbox(alliance, access=HUB)]
    send_campaign(alliance, access=HUB, name="all", linking_keys=keys)
    for name in PARTNERS:
        for delivery in list_inbox(alliance, access=partner(name)):
            content = alliance.files.read_bytes(f"inbox/{delivery.id}.csv").decode()
            others = [p for p in PARTNERS if p != name]
            assert not any(f"{other}.v" in content for other in others)
            assert "hub.v" not in content


def test_inbox_recovery_removes_only_what_a_killed_writer_left(alliance: Deployment) -> None:
    month = alliance.settings.home / "month.csv"
    month.write_text("card,date,amount,store\n10000001,2026-11-02,12.50,C-042\n")
    send_exchange(
        alliance, access=partner("casino"), domain="casino", exchange_type="purchases", source=month
    )
    # The folder where deliveries are written (and kept, on SQLite; see tiers.filestore).
    inbox = alliance.files.staging("inbox/any.csv").parent
    (listed,) = alliance.files.names("inbox/")
    orphans = [inbox / f"{'ab' * 16}.csv", inbox / f".{'cd' * 16}.csv.x1.part"]
    young = inbox / f".{'ef' * 16}.csv.x2.part"
    for path in [*orphans, young]:
        path.write_text("pseudonym\n")
    old = time.time() - alliance.settings.job_stale_seconds - 10
    for path in [alliance.settings.home / listed, *orphans]:
        if path.exists():  # the listed delivery is a file of the home on SQLite only
            os.utime(path, (old, old))
    assert 2 == recover_inbox(alliance)
    assert young.exists() and not any(path.exists() for path in orphans)
    assert [listed] == alliance.files.names("inbox/")
    # The operator's purge sweeps them too, and says so in the log.
    os.utime(young, (old, old))
    purge_inbox(alliance, access=ACCESS)
    assert not young.exists()
    assert [listed] == alliance.files.names("inbox/")


def test_a_delivery_being_read_is_read_whole_when_the_purge_takes_it(
    alliance: Deployment,
) -> None:
    send(alliance, "casino", "card,date,amount\n10000001,2026-11-02,1\n20000001,2026-11-02,2\n")
    (delivery,) = list_inbox(alliance, access=HUB)
    whole = read(alliance, HUB, delivery.id)
    ack_delivery(alliance, access=HUB, delivery_id=delivery.id)
    with delivery_file(alliance, access=HUB, delivery_id=delivery.id) as handle:
        first = handle.read(5)
        assert 1 == purge_inbox(alliance, access=at(50), older_than_days=30)
        assert [] == alliance.files.names(f"inbox/{delivery.id}")
        rest = handle.read()
    assert whole == list(csv.reader(io.StringIO((first + rest).decode())))
    with pytest.raises(NotFound):
        delivery_file(alliance, access=HUB, delivery_id=delivery.id)
