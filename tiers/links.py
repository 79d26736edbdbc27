"""Card links: association, dissociation and transfer of alliance customers.

Every change takes the link lock, asks the evaluator (:mod:`policy`) for a decision, applies it
and records it (rule and policy version) in the same transaction. A refusal is recorded as
``denied`` with the rule's name and raised as :class:`PolicyViolation`. A partner learns the
outcome and the rule, nothing about another partner's customer; the hub sees only hub keys
(:mod:`tiers.resolution`). Cards are enrolled by :mod:`tiers.cards`.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ParamSpec

from sqlalchemy import Connection

from audit import Action
from errors import NotFound, PolicyViolation
from policy import (
    Associate,
    AttachmentPolicy,
    Card,
    Customer,
    Decision,
    Dissociate,
    Transfer,
    evaluate,
)
from tiers import _hub_keys as hub_keys
from tiers.auditing import Access, audited, is_recorded, mark_recorded
from tiers.authorisation import require
from tiers.cards import partner_card, partner_domain
from tiers.deployment import Deployment
from tiers.inbox import staged_delivery
from tiers.policies import current_policy
from tiers.pseudonyms import Pseudonym
from tiers.storage import inbox as inbox_repo
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord
from tiers.storage.links import CardRow

__all__ = [
    "LinkOutcome",
    "associate",
    "backfill_hub_keys",
    "dissociate",
    "transfer",
]


NO_CUSTOMER = 0  # no customer has this id: a read of it finds nothing, at a read's cost


def _state(connection: Connection, card: CardRow | None) -> Customer | None:
    """The customer of ``card``, read with the same two queries whether or not there is a card
    or a customer: an association's refusals must not differ by the work done before them."""
    customer_id = NO_CUSTOMER if card is None or card.customer_id is None else card.customer_id
    customer = links_repo.customer(connection, customer_id=customer_id)
    rows = links_repo.cards_of(connection, customer_id=customer_id)
    if customer is None:
        assert customer_id == NO_CUSTOMER
        return None
    return Customer(
        customer.id,
        tuple(Card(r.id, r.partner, r.enrolled_at) for r in rows),
        customer.attached_to,
        customer.attaching_card,
        customer.last_transfer_at,
    )


def _presented(
    deployment: Deployment,
    connection: Connection,
    domain: str,
    card: str,
    context: _Context,
) -> tuple[CardRow, Customer | None]:
    """The requesting partner's card, noted as the request's subject, and its customer."""
    row = partner_card(deployment, connection, partner_domain(deployment, connection, domain), card)
    context.subject = deployment.subject_reference(connection, row.base)
    return row, _state(connection, row)


def _stand_in(partner: DomainRecord, now: datetime) -> CardRow:
    """An unlinked card of ``partner`` that does not exist, evaluated in place of a card not
    found so that the refusal costs what the rules' own refusals cost."""
    return CardRow(NO_CUSTOMER, b"", partner.name, b"", now, None, None)


def _as_card(row: CardRow) -> Card:
    return Card(row.id, row.partner, row.enrolled_at)


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """What the requesting partner learns: the rule and version, and whether it is the SG."""

    rule: str
    policy_version: str
    changed: bool
    attached_here: bool


def _attach_history(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    customer_id: int,
    decision: Decision,
) -> None:
    links_repo.add_attachment(
        connection,
        customer_id=customer_id,
        partner_id=deployment.domain(connection, decision.attached_to).id
        if decision.attached_to
        else None,
        card_id=decision.attaching_card,
        rule=decision.rule,
        policy_version=decision.policy_version,
        now=access.now,
        actor=access.actor,
    )


def _new_customer(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    decision: Decision,
    card_ids: list[int],
) -> int:
    assert decision.attached_to is not None and decision.attaching_card is not None
    base = secrets.token_bytes(32)
    customer_id = links_repo.create_customer(
        connection,
        base=base,
        attached_to=deployment.domain(connection, decision.attached_to).id,
        attaching_card=decision.attaching_card,
        rule=decision.rule,
        policy_version=decision.policy_version,
        now=access.now,
    )
    links_repo.set_card_customer(
        connection, card_ids=card_ids, customer_id=customer_id, now=access.now
    )
    hub = deployment.hub_domain(connection)
    if hub is not None:
        key = deployment.domain_keyring(connection, hub).active
        hub_keys.issue(connection, key, [(base, "customer")])
    _attach_history(deployment, connection, access, customer_id, decision)
    return customer_id


def _reattach(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    customer_id: int,
    decision: Decision,
    *,
    transfer: bool = False,
) -> None:
    assert decision.attached_to is not None
    values: dict[str, object] = {
        "attached_to": deployment.domain(connection, decision.attached_to).id,
        "attaching_card": decision.attaching_card,
        "rule": decision.rule,
        "policy_version": decision.policy_version,
        "attached_at": access.now,
    }
    if transfer:
        values["last_transfer_at"] = access.now
    links_repo.update_customer(connection, customer_id=customer_id, **values)
    _attach_history(deployment, connection, access, customer_id, decision)


def _dissolve(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    customer_id: int,
    decision: Decision,
) -> None:
    customer = links_repo.customer(connection, customer_id=customer_id)
    assert customer is not None
    links_repo.delete_customer(connection, customer_id=customer_id, base=customer.base)
    _attach_history(deployment, connection, access, customer_id, decision)


def _finish(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    *,
    action: Action,
    decision: Decision,
    domains: list[str],
    card: CardRow,
    other: CardRow | None = None,
) -> LinkOutcome:
    detail: dict[str, str | int] = {
        "rule": decision.rule,
        "policy_version": decision.policy_version,
    }
    if other is not None:
        detail["other_subject"] = deployment.subject_reference(connection, other.base)
    subject = deployment.subject_reference(connection, card.base)
    if not decision.accepted:
        when = decision.not_before
        later = f"; possible from {when.date().isoformat()}" if when is not None else ""
        raise PolicyViolation(f"refused by rule {decision.rule}{later}", code=decision.rule)
    deployment.record(
        connection, access, action=action, domains=domains, subject=subject, detail=detail
    )
    return LinkOutcome(
        decision.rule,
        decision.policy_version,
        not decision.noop,
        decision.attached_to == domains[0],
    )


def _refusal(
    deployment: Deployment,
    access: Access,
    *,
    action: Action,
    error: PolicyViolation,
    domains: list[str],
    policy: AttachmentPolicy,
    subject: str | None,
) -> None:
    """Refusals are logged with the rule, the policy version and the subject reference."""
    with deployment.transaction() as connection:
        deployment.record(
            connection,
            access,
            action=action,
            domains=domains,
            subject=subject,
            detail={"rule": error.code, "policy_version": policy.version},
            outcome="denied",
            code=error.code,
        )
    mark_recorded(error)


@dataclass(slots=True)
class _Context:
    """What a refusal is recorded with: the policy in force, and the presented card's subject
    reference once it is known (:func:`_presented`)."""

    policy: AttachmentPolicy | None = None
    subject: str | None = None


_Body = Callable[[Connection, AttachmentPolicy, _Context], LinkOutcome]


def _run(
    deployment: Deployment, access: Access, action: Action, domains: list[str], body: _Body
) -> LinkOutcome:
    context = _Context()
    try:
        with deployment.transaction() as connection:
            links_repo.lock(connection)
            context.policy = current_policy(connection)
            return body(connection, context.policy, context)
    except PolicyViolation as error:
        assert context.policy is not None  # a refusal comes from the rules, after the policy
        _refusal(
            deployment,
            access,
            action=action,
            error=error,
            domains=domains,
            policy=context.policy,
            subject=context.subject,
        )
        raise


def _notify_merge(
    deployment: Deployment, connection: Connection, access: Access, gone: bytes, kept: bytes
) -> None:
    """Tell the hub that a merged customer's keys now mean the surviving customer's key."""
    hub = deployment.hub_domain(connection)
    if hub is None:
        return
    key = deployment.domain_keyring(connection, hub).active
    new_value = links_repo.hub_value(connection, ref=kept, version=key.version)
    if new_value is None:
        return
    new = str(Pseudonym(hub.name, key.version, new_value))
    with staged_delivery(
        deployment,
        connection,
        recipient=hub,
        kind="merge",
        name="merge",
        header=["old_linking_key", "new_linking_key"],
        sender="tiers",
        now=access.now,
    ) as delivery:
        for version, value in links_repo.hub_keys_of(connection, refs=[gone]):
            delivery.write([str(Pseudonym(hub.name, version, value)), new])


def backfill_hub_keys(
    deployment: Deployment, connection: Connection, hub: DomainRecord, now: datetime
) -> int:
    """Give every card and customer a key in a newly created hub domain (cards enrolled before
    it existed had none); withdrawn ones excepted. Returns how many keys were issued."""
    key = deployment.domain_keyring(connection, hub).active
    refs = links_repo.all_refs(connection)
    gone = inbox_repo.withdrawn_refs(connection, refs=[r for r, _ in refs])
    return len(hub_keys.issue(connection, key, [(r, kind) for r, kind in refs if r not in gone]))


ASSOCIATION_REFUSED = "association_refused"
P = ParamSpec("P")


def _one_refusal(function: Callable[P, LinkOutcome]) -> Callable[P, LinkOutcome]:
    """Every refusal of ``function`` (recorded with its precise reason) answered as one,
    ``association_refused``."""

    @functools.wraps(function)
    def answered(*args: P.args, **kwargs: P.kwargs) -> LinkOutcome:
        try:
            return function(*args, **kwargs)
        except PolicyViolation as error:
            assert is_recorded(error)  # with its precise reason
            refused = PolicyViolation(
                "the association is refused: check both card numbers with their holder",
                code=ASSOCIATION_REFUSED,
            )
            mark_recorded(refused)
            raise refused from None

    return answered


def _other(
    deployment: Deployment, connection: Connection, other_domain: str, other_card: str
) -> tuple[CardRow | None, Customer | None]:
    """The other partner's card, if it is enrolled there, and its customer, read with the same
    queries whether or not it is (:func:`_state`)."""
    partner = partner_domain(deployment, connection, other_domain)
    try:
        found: CardRow | None = partner_card(deployment, connection, partner, other_card)
    except NotFound:
        found = None
    return found, _state(connection, found)


def _join(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    decision: Decision,
    *,
    mine: tuple[CardRow, Customer | None],
    theirs: tuple[CardRow, Customer | None],
) -> None:
    """Carry out an accepted association of two cards, each with its customer, if any: a new
    customer for two loose cards, the loose card joined to the other's customer, or the two
    customers merged into the rules' survivor."""
    (card_a, state_a), (card_b, state_b) = mine, theirs
    if state_a is None and state_b is None:
        _new_customer(deployment, connection, access, decision, [card_a.id, card_b.id])
    elif state_a is not None and state_b is not None:
        _merge(deployment, connection, access, decision, state_a=state_a, state_b=state_b)
    else:
        joined = state_a or state_b
        assert joined is not None
        loose = card_b if state_a is not None else card_a
        links_repo.set_card_customer(
            connection, card_ids=[loose.id], customer_id=joined.id, now=access.now
        )


def _merge(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    decision: Decision,
    *,
    state_a: Customer,
    state_b: Customer,
) -> None:
    """Two customers made one: the other's cards move to the survivor, whose attachment the
    rules decide; the hub is told of the merge."""
    survivor = decision.survivor
    assert survivor is not None
    gone = state_b if state_a.id == survivor else state_a
    gone_row = links_repo.customer(connection, customer_id=gone.id)
    kept_row = links_repo.customer(connection, customer_id=survivor)
    assert gone_row is not None and kept_row is not None
    _notify_merge(deployment, connection, access, gone_row.base, kept_row.base)
    links_repo.delete_customer(connection, customer_id=gone.id, base=gone_row.base)
    links_repo.set_card_customer(
        connection, card_ids=[c.id for c in gone.cards], customer_id=survivor, now=access.now
    )
    _reattach(deployment, connection, access, survivor, decision)


@_one_refusal
@audited(Action.CARD_ASSOCIATE)
def associate(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    card: str,
    other_domain: str,
    other_card: str,
) -> LinkOutcome:
    """Link the requester's card with another partner's card into one alliance customer.

    A partner must learn nothing of the other partner's cards beyond what a successful
    association tells it: the other card not enrolled there, already linked to another card of
    the requester's, or in a customer the rules will not merge, all get one refusal,
    ``association_refused`` (:func:`_one_refusal`). The access log keeps the precise reason
    (``unknown_other_card`` or the rule) and :mod:`tiers.alerts` counts the refusals of each
    partner."""
    require(access, Action.CARD_ASSOCIATE, domain)
    deployment.budget.admit(access, 2)

    def body(connection: Connection, policy: AttachmentPolicy, context: _Context) -> LinkOutcome:
        mine, state_a = _presented(deployment, connection, domain, card, context)
        found, state_b = _other(deployment, connection, other_domain, other_card)
        theirs = found or _stand_in(deployment.domain(connection, other_domain), access.now)
        decision = evaluate(
            Associate(domain, _as_card(mine), state_a, _as_card(theirs), state_b), policy
        )
        if found is None:  # after the rules, so that every refusal has done the same work
            raise PolicyViolation("no such card at the other partner", code="unknown_other_card")
        if decision.accepted and not decision.noop:
            a, b = (mine, state_a), (theirs, state_b)
            _join(deployment, connection, access, decision, mine=a, theirs=b)
        return _finish(
            deployment,
            connection,
            access,
            action=Action.CARD_ASSOCIATE,
            decision=decision,
            domains=[domain, other_domain],
            card=mine,
            other=theirs,
        )

    return _run(deployment, access, Action.CARD_ASSOCIATE, [domain, other_domain], body)


@audited(Action.CARD_DISSOCIATE)
def dissociate(deployment: Deployment, *, access: Access, domain: str, card: str) -> LinkOutcome:
    """Take the requester's card out of its alliance customer."""
    require(access, Action.CARD_DISSOCIATE, domain)
    deployment.budget.admit(access, 1)

    def body(connection: Connection, policy: AttachmentPolicy, context: _Context) -> LinkOutcome:
        mine, state = _presented(deployment, connection, domain, card, context)
        decision = evaluate(Dissociate(domain, _as_card(mine), state), policy)
        if decision.accepted and not decision.noop and state is not None:
            if decision.dissolve:
                _dissolve(deployment, connection, access, state.id, decision)
            else:
                links_repo.set_card_customer(
                    connection, card_ids=[mine.id], customer_id=None, now=None
                )
                if decision.rule.startswith("reattach."):
                    _reattach(deployment, connection, access, state.id, decision)
        return _finish(
            deployment,
            connection,
            access,
            action=Action.CARD_DISSOCIATE,
            decision=decision,
            domains=[domain],
            card=mine,
        )

    return _run(deployment, access, Action.CARD_DISSOCIATE, [domain], body)


@audited(Action.CUSTOMER_TRANSFER)
def transfer(deployment: Deployment, *, access: Access, domain: str, card: str) -> LinkOutcome:
    """The customer asks to move to the requesting SG, presenting their card there."""
    require(access, Action.CUSTOMER_TRANSFER, domain)
    deployment.budget.admit(access, 1)

    def body(connection: Connection, policy: AttachmentPolicy, context: _Context) -> LinkOutcome:
        mine, state = _presented(deployment, connection, domain, card, context)
        decision = evaluate(Transfer(domain, _as_card(mine), state, access.now), policy)
        if decision.accepted and not decision.noop and state is not None:
            _reattach(deployment, connection, access, state.id, decision, transfer=True)
        return _finish(
            deployment,
            connection,
            access,
            action=Action.CUSTOMER_TRANSFER,
            decision=decision,
            domains=[domain],
            card=mine,
        )

    return _run(deployment, access, Action.CUSTOMER_TRANSFER, [domain], body)
