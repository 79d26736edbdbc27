"""The attachment evaluator: ``(customer state, request, policy) -> Decision`` (pure).

Every decision names the rule that made it and the policy version. The invariants it keeps:
an alliance customer has at least two cards and exactly one management company (SG), a partner
allowed as SG that holds one of its cards; a customer left with fewer than two cards, or with
no card of a partner allowed as SG, is dissolved (its cards are unlinked).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from policy.schema import AttachmentPolicy

__all__ = [
    "Associate",
    "Card",
    "Customer",
    "Decision",
    "Dissociate",
    "Transfer",
    "evaluate",
]


@dataclass(frozen=True, slots=True)
class Card:
    id: int
    partner: str
    enrolled_at: datetime


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    cards: tuple[Card, ...]
    attached_to: str
    attaching_card: int
    last_transfer_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Associate:
    requester: str
    card_a: Card
    customer_a: Customer | None
    card_b: Card
    customer_b: Customer | None


@dataclass(frozen=True, slots=True)
class Dissociate:
    requester: str
    card: Card
    customer: Customer | None


@dataclass(frozen=True, slots=True)
class Transfer:
    requester: str
    card: Card
    customer: Customer | None
    now: datetime


Request = Associate | Dissociate | Transfer


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do. ``accept`` with ``noop`` changes nothing; ``dissolve`` unlinks every card."""

    outcome: Literal["accept", "refuse"]
    rule: str
    policy_version: str
    attached_to: str | None = None
    attaching_card: int | None = None
    survivor: int | None = None
    noop: bool = False
    dissolve: bool = False
    # A refusal that time will lift: when (``transfer.too_soon``).
    not_before: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accept"


def _order(card: Card) -> tuple[datetime, str, int]:
    return (card.enrolled_at, card.partner, card.id)


def _first_eligible(
    cards: tuple[Card, ...], policy: AttachmentPolicy, *, newest: bool = False
) -> Card | None:
    eligible = sorted((c for c in cards if policy.may_be_sg(c.partner)), key=_order, reverse=newest)
    return eligible[0] if eligible else None


def _refuse(rule: str, policy: AttachmentPolicy) -> Decision:
    return Decision("refuse", rule, policy.version)


def _fits(cards: tuple[Card, ...], policy: AttachmentPolicy) -> str | None:
    if len(cards) > policy.max_cards_per_customer:
        return "link.max_cards"
    partners = [c.partner for c in cards]
    if policy.one_card_per_partner and len(set(partners)) != len(partners):
        return "link.one_card_per_partner"
    if _first_eligible(cards, policy) is None:
        return "link.no_eligible_sg"
    return None


def _associate(request: Associate, policy: AttachmentPolicy) -> Decision:  # noqa: PLR0911
    a, b = request.customer_a, request.customer_b
    if request.card_a.id == request.card_b.id:
        return _refuse("link.same_card", policy)
    if a is not None and b is not None and a.id == b.id:
        return Decision(
            "accept",
            "link.already_linked",
            policy.version,
            a.attached_to,
            a.attaching_card,
            a.id,
            noop=True,
        )
    if a is not None and b is not None and not policy.allow_merge:
        return _refuse("link.merge_forbidden", policy)
    cards = tuple(
        {
            c.id: c
            for c in (
                *(a.cards if a else (request.card_a,)),
                *(b.cards if b else (request.card_b,)),
            )
        }.values()
    )
    problem = _fits(cards, policy)
    if problem:
        return _refuse(problem, policy)
    if a is not None and b is not None:
        return _merged((a, b), cards, policy)
    joined = a or b
    if joined is not None:
        return Decision(
            "accept",
            "link.join",
            policy.version,
            joined.attached_to,
            joined.attaching_card,
            joined.id,
        )
    return _first_attachment(request, cards, policy)


def _merged(
    existing: tuple[Customer, Customer], cards: tuple[Card, ...], policy: AttachmentPolicy
) -> Decision:
    """Two customers made one: the attachment whose attaching card was enrolled first
    survives, if its SG is still allowed; otherwise first enrolment over all the cards. The
    customer with the lower number survives."""
    by_card = {c.id: c for c in cards}
    candidates = sorted(
        (c for c in existing if policy.may_be_sg(c.attached_to)),
        key=lambda c: (_order(by_card[c.attaching_card]), c.id),
    )
    survivor = min(existing, key=lambda c: c.id)
    if candidates:
        kept = candidates[0]
        return Decision(
            "accept",
            "link.merge.first_enrolment",
            policy.version,
            kept.attached_to,
            kept.attaching_card,
            survivor.id,
        )
    first = _first_eligible(cards, policy)
    assert first is not None  # _fits checked it
    return Decision(
        "accept", "link.merge.first_enrolment", policy.version, first.partner, first.id, survivor.id
    )


def _first_attachment(
    request: Associate, cards: tuple[Card, ...], policy: AttachmentPolicy
) -> Decision:
    """Two loose cards made a customer, attached by the policy's initial rule."""
    if policy.initial_rule == "requesting_partner" and policy.may_be_sg(request.requester):
        card = next(c for c in cards if c.partner == request.requester)
        return Decision(
            "accept", "attach.requesting_partner", policy.version, card.partner, card.id
        )
    first = _first_eligible(cards, policy)
    assert first is not None
    return Decision("accept", "attach.first_enrolment", policy.version, first.partner, first.id)


def _dissociate(request: Dissociate, policy: AttachmentPolicy) -> Decision:
    customer = request.customer
    if customer is None:
        return Decision("accept", "unlink.not_linked", policy.version, noop=True)
    remaining = tuple(c for c in customer.cards if c.id != request.card.id)
    if len(remaining) < 2:
        return Decision(
            "accept", "unlink.dissolve", policy.version, survivor=customer.id, dissolve=True
        )
    if request.card.id != customer.attaching_card and policy.may_be_sg(customer.attached_to):
        return Decision(
            "accept",
            "unlink.keep_attachment",
            policy.version,
            customer.attached_to,
            customer.attaching_card,
            customer.id,
        )
    newest = policy.reattachment_rule == "most_recent_enrolment"
    card = _first_eligible(remaining, policy, newest=newest)
    if card is None:
        return Decision(
            "accept",
            "unlink.dissolve.no_eligible_sg",
            policy.version,
            survivor=customer.id,
            dissolve=True,
        )
    return Decision(
        "accept",
        f"reattach.{policy.reattachment_rule}",
        policy.version,
        card.partner,
        card.id,
        customer.id,
    )


def _transfer(request: Transfer, policy: AttachmentPolicy) -> Decision:
    customer = request.customer
    if customer is None:
        return _refuse("transfer.not_linked", policy)
    if not policy.transfer_allowed:
        return _refuse("transfer.not_allowed", policy)
    if not policy.may_be_sg(request.requester):
        return _refuse("transfer.not_sg", policy)
    if customer.attached_to == request.requester:
        return Decision(
            "accept",
            "transfer.already_attached",
            policy.version,
            customer.attached_to,
            customer.attaching_card,
            customer.id,
            noop=True,
        )
    last = customer.last_transfer_at
    if last is not None and request.now - last < timedelta(days=policy.transfer_min_days):
        possible = last + timedelta(days=policy.transfer_min_days)
        return Decision("refuse", "transfer.too_soon", policy.version, not_before=possible)
    return Decision(
        "accept",
        "transfer.customer_choice",
        policy.version,
        request.requester,
        request.card.id,
        customer.id,
    )


def evaluate(request: Request, policy: AttachmentPolicy) -> Decision:
    """The decision for ``request`` under ``policy``."""
    if isinstance(request, Associate):
        return _associate(request, policy)
    if isinstance(request, Dissociate):
        return _dissociate(request, policy)
    return _transfer(request, policy)
