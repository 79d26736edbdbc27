"""One test per rule of the evaluator (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policy import Associate, Card, Customer, Dissociate, Transfer, evaluate, load_policy

POLICY = load_policy((Path(__file__).parents[2] / "policy" / "attachment.toml").read_bytes())
T = datetime(2026, 1, 1, tzinfo=UTC)


def card(id_: int, partner: str, day: int = 0) -> Card:
    return Card(id_, partner, T + timedelta(days=day))


CASINO, SNCF, GL, CE = (
    card(1, "casino", 5),
    card(2, "sncf", 1),
    card(3, "galeries-lafayette", 3),
    card(4, "caisse-epargne", 9),
)


def customer(
    id_: int, *cards: Card, sg: str, attaching: int, transferred: datetime | None = None
) -> Customer:
    return Customer(id_, cards, sg, attaching, transferred)


def test_first_enrolment_wins_among_partners_allowed_as_sg() -> None:
    # sncf's card is older but sncf may not act as SG: galeries-lafayette (day 3) wins over casino.
    decision = evaluate(Associate("casino", CASINO, None, GL, None), POLICY)
    assert ("accept", "attach.first_enrolment", "galeries-lafayette", 3) == (
        decision.outcome,
        decision.rule,
        decision.attached_to,
        decision.attaching_card,
    )
    assert POLICY.version == decision.policy_version


def test_requesting_partner_rule() -> None:
    policy = replace(POLICY, initial_rule="requesting_partner")
    decision = evaluate(Associate("casino", CASINO, None, GL, None), policy)
    assert ("attach.requesting_partner", "casino") == (decision.rule, decision.attached_to)


def test_a_link_needs_a_partner_allowed_as_sg() -> None:
    other = card(5, "fnac", 0)
    decision = evaluate(Associate("sncf", SNCF, None, other, None), POLICY)
    assert ("refuse", "link.no_eligible_sg") == (decision.outcome, decision.rule)


def test_a_card_cannot_be_linked_to_itself() -> None:
    assert (
        "link.same_card" == evaluate(Associate("casino", CASINO, None, CASINO, None), POLICY).rule
    )


def test_linking_twice_changes_nothing() -> None:
    existing = customer(7, CASINO, GL, sg="galeries-lafayette", attaching=3)
    decision = evaluate(Associate("casino", CASINO, existing, GL, existing), POLICY)
    assert (True, "link.already_linked") == (decision.noop, decision.rule)


def test_joining_keeps_the_attachment() -> None:
    existing = customer(7, CASINO, GL, sg="galeries-lafayette", attaching=3)
    decision = evaluate(Associate("sncf", SNCF, None, CASINO, existing), POLICY)
    assert ("link.join", "galeries-lafayette", 7) == (
        decision.rule,
        decision.attached_to,
        decision.survivor,
    )


def test_one_card_per_partner_and_max_cards() -> None:
    existing = customer(7, CASINO, GL, sg="galeries-lafayette", attaching=3)
    second_casino = card(8, "casino", 20)
    assert (
        "link.one_card_per_partner"
        == evaluate(Associate("casino", second_casino, None, GL, existing), POLICY).rule
    )
    small = replace(POLICY, max_cards_per_customer=2)
    assert "link.max_cards" == evaluate(Associate("sncf", SNCF, None, GL, existing), small).rule


def test_merging_keeps_the_attachment_of_the_first_enrolled_attaching_card() -> None:
    one = customer(7, CASINO, SNCF, sg="casino", attaching=1)
    two = customer(9, GL, CE, sg="caisse-epargne", attaching=4)
    decision = evaluate(Associate("casino", CASINO, one, GL, two), POLICY)
    assert ("link.merge.first_enrolment", "casino", 1, 7) == (
        decision.rule,
        decision.attached_to,
        decision.attaching_card,
        decision.survivor,
    )
    assert (
        "link.merge_forbidden"
        == evaluate(
            Associate("casino", CASINO, one, GL, two), replace(POLICY, allow_merge=False)
        ).rule
    )


def test_dissociating_the_attaching_card_reattaches_by_the_policy_rule() -> None:
    three = customer(7, CASINO, GL, CE, sg="galeries-lafayette", attaching=3)
    oldest = evaluate(Dissociate("galeries-lafayette", GL, three), POLICY)
    assert ("reattach.oldest_card", "casino") == (oldest.rule, oldest.attached_to)
    newest = evaluate(
        Dissociate("galeries-lafayette", GL, three),
        replace(POLICY, reattachment_rule="most_recent_enrolment"),
    )
    assert ("reattach.most_recent_enrolment", "caisse-epargne") == (newest.rule, newest.attached_to)
    kept = evaluate(Dissociate("casino", CASINO, three), POLICY)
    assert ("unlink.keep_attachment", "galeries-lafayette") == (kept.rule, kept.attached_to)


def test_a_customer_left_with_one_card_or_no_sg_is_dissolved() -> None:
    two = customer(7, CASINO, GL, sg="galeries-lafayette", attaching=3)
    dissolved = evaluate(Dissociate("casino", CASINO, two), POLICY)
    assert (True, "unlink.dissolve") == (dissolved.dissolve, dissolved.rule)
    with_sncf = customer(8, CASINO, SNCF, card(6, "fnac", 2), sg="casino", attaching=1)
    decision = evaluate(Dissociate("casino", CASINO, with_sncf), POLICY)
    assert (True, "unlink.dissolve.no_eligible_sg") == (decision.dissolve, decision.rule)
    loose = evaluate(Dissociate("casino", CASINO, None), POLICY)
    assert (True, "unlink.not_linked") == (loose.noop, loose.rule)


@pytest.mark.parametrize(
    ("requester", "card_", "policy_change", "transferred", "rule"),
    [
        ("casino", CASINO, {}, None, "transfer.customer_choice"),
        ("casino", CASINO, {"transfer_allowed": False}, None, "transfer.not_allowed"),
        ("sncf", SNCF, {}, None, "transfer.not_sg"),
        ("galeries-lafayette", GL, {}, None, "transfer.already_attached"),
        ("casino", CASINO, {}, T + timedelta(days=100), "transfer.too_soon"),
        ("casino", CASINO, {}, T + timedelta(days=10), "transfer.customer_choice"),
    ],
)
def test_transfer_rules(
    requester: str,
    card_: Card,
    policy_change: dict[str, object],
    transferred: datetime | None,
    rule: str,
) -> None:
    existing = customer(
        7, CASINO, SNCF, GL, sg="galeries-lafayette", attaching=3, transferred=transferred
    )
    decision = evaluate(
        Transfer(requester, card_, existing, T + timedelta(days=120)),
        replace(POLICY, **policy_change),
    )  # type: ignore[arg-type]
    assert rule == decision.rule
    if rule == "transfer.customer_choice":
        assert (requester, card_.id) == (decision.attached_to, decision.attaching_card)
    # Only a refusal that time lifts says when.
    after = None
    if rule == "transfer.too_soon" and transferred is not None:
        after = transferred + timedelta(days=POLICY.transfer_min_days)
    assert after == decision.not_before
    assert "transfer.not_linked" == evaluate(Transfer("casino", CASINO, None, T), POLICY).rule
