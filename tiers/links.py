"""Card links: enrolment, association, dissociation, transfer, and the hub's resolution.

Every change takes the link lock, asks the evaluator (:mod:`policy`) for a decision, applies it
and records it (rule and policy version) in the same transaction. A refusal is recorded as
``denied`` with the rule's name and raised as :class:`PolicyViolation`. A partner learns the
outcome and the rule, nothing about another partner's customer; the hub sees only hub keys.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from audit import Counts
from keys import DomainKey, Keyring, length_prefixed
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
from tiers.auditing import Access, audited, mark_recorded
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.errors import InvalidIdentifier, InvalidRequest, NotFound, PolicyViolation, TiersError
from tiers.identifiers import get_kind
from tiers.policies import current_policy
from tiers.pseudonyms import (
    Pseudonym,
    base_pseudonym,
    domain_pseudonym,
    parse_for_domain,
    pseudonym_value,
    pseudonym_values,
)
from tiers.storage import inbox as inbox_repo
from tiers.storage import links, subjects
from tiers.storage.domains import DomainRecord
from tiers.storage.links import CardRow

__all__ = [
    "CardEnrolment",
    "CardView",
    "LinkOutcome",
    "Resolution",
    "associate",
    "backfill_hub_keys",
    "behind_hub_key",
    "card_of",
    "card_ref",
    "card_refs",
    "dissociate",
    "enrol_cards",
    "partner_card",
    "resolve",
    "transfer",
]

_CARD_REF = b"tiers card at partner v1"


def card_ref(base_key: DomainKey, partner: str, base: bytes) -> bytes:
    """A card's internal identity: the same number at two partners is two cards."""
    return card_refs(base_key, partner, [base])[0]


def card_refs(base_key: DomainKey, partner: str, bases: Sequence[bytes]) -> list[bytes]:
    """:func:`card_ref` of each base pseudonym, in order (the partner's part encoded once)."""
    head = length_prefixed(_CARD_REF, partner.encode())
    return base_key.mac_many([head + length_prefixed(base) for base in bases])


class CardEnrolment:
    """Enrolling one partner's cards within one transaction: the base and hub keys are
    unwrapped once, on first use, however many cards follow (the base key may be handed in by
    a caller that already holds it)."""

    def __init__(
        self,
        deployment: Deployment,
        connection: Connection,
        partner: DomainRecord,
        base_key: DomainKey | None = None,
    ) -> None:
        self.deployment = deployment
        self.connection = connection
        self.partner = partner
        if base_key is not None:
            self.base_key = base_key

    @functools.cached_property
    def base_key(self) -> DomainKey:
        return self.deployment.base_keyring(self.connection).active

    @functools.cached_property
    def hub(self) -> DomainRecord | None:
        return self.deployment.hub_domain(self.connection)

    @functools.cached_property
    def hub_key(self) -> DomainKey | None:
        hub = self.hub
        return None if hub is None else self.deployment.domain_keyring(self.connection, hub).active

    def enrol(self, bases: Sequence[bytes], now: datetime) -> None:
        """Enrol cards (first enrolment date kept) and give each its hub linking key."""
        if not bases or self.partner.role != "partner":
            return
        unique = list(dict.fromkeys(bases))
        refs = list(zip(card_refs(self.base_key, self.partner.name, unique), unique, strict=True))
        links.enrol(self.connection, partner_id=self.partner.id, cards_=refs, now=now)
        if self.hub is None or self.hub_key is None:
            return
        # A card that left the alliance never gets a hub key again.
        gone = inbox_repo.withdrawn_refs(self.connection, refs=[r for r, _ in refs])
        keyed = [r for r, _ in refs if r not in gone]
        values = pseudonym_values(self.hub_key, keyed)
        links.insert_hub_keys(
            self.connection,
            [
                {
                    "version": self.hub_key.version,
                    "value": value,
                    "kind": "card",
                    "ref": r,
                }
                for r, value in zip(keyed, values, strict=True)
            ],
        )


@audited("card_enrol")
def enrol_cards(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    values: Sequence[str],
    enrolled_at: datetime | None = None,
) -> list[str | InvalidIdentifier]:
    """Enrol a partner's cards (clear numbers); their pseudonyms in order, errors in place."""
    require(access, "card_enrol", domain)
    kind = get_kind("card")
    results: list[str | InvalidIdentifier] = []
    with deployment.transaction() as connection:
        partner = _partner(deployment, connection, domain)
        options = deployment.normalisation(partner)
        base_key = deployment.base_keyring(connection).active
        domain_key = deployment.domain_keyring(connection, partner).active
        pairs: list[tuple[bytes, bytes]] = []
        for value in values:
            try:
                normalised = kind.normaliser(value, options)
            except InvalidIdentifier as error:
                results.append(error)
                continue
            base = base_pseudonym(base_key, "card", normalised)
            pseudonym = domain_pseudonym(domain_key, partner.name, base)
            pairs.append((base, pseudonym.value))
            results.append(str(pseudonym))
        subjects.register(
            connection,
            domain_id=partner.id,
            version=domain_key.version,
            pairs=pairs,
            now=access.now,
        )
        CardEnrolment(deployment, connection, partner).enrol(
            [b for b, _ in pairs], enrolled_at or access.now
        )
        deployment.record(
            connection,
            access,
            action="card_enrol",
            domains=[domain],
            counts=Counts(len(values), len(pairs), len(values) - len(pairs)),
            subject=deployment.subject_reference(connection, pairs[0][0])
            if len(values) == 1 and pairs
            else None,
        )
    return results


def _partner(deployment: Deployment, connection: Connection, name: str) -> DomainRecord:
    record = deployment.domain(connection, name)
    if record.role != "partner":
        raise InvalidRequest(f"domain {name!r} is not a partner domain", code="wrong_role")
    return record


def card_of(
    deployment: Deployment, connection: Connection, partner: DomainRecord, base: bytes
) -> CardRow | None:
    """The partner's enrolled card whose number has the base pseudonym ``base``, if any."""
    ref = card_ref(deployment.base_keyring(connection).active, partner.name, base)
    return links.card_by_ref(connection, ref=ref)


def _card(
    deployment: Deployment, connection: Connection, partner: DomainRecord, value: str
) -> CardRow:
    """The partner's card named by a clear number or by the partner's own pseudonym."""
    base: bytes | None
    if ".v" in value:
        ring = deployment.domain_keyring(connection, partner)
        pseudonym = parse_for_domain(value.strip(), domain=partner.name, keyring=ring)
        base = subjects.lookup(
            connection, domain_id=partner.id, version=pseudonym.version, value=pseudonym.value
        )
    else:
        normalised = get_kind("card").normaliser(value, deployment.normalisation(partner))
        base = base_pseudonym(deployment.base_keyring(connection).active, "card", normalised)
    row = None if base is None else card_of(deployment, connection, partner, base)
    if row is None:
        raise NotFound(f"no card of {partner.name} by that number", code="unknown_card")
    return row


partner_card = _card  # the partner's card named by number or own pseudonym (public name)


def _state(connection: Connection, card: CardRow) -> Customer | None:
    if card.customer_id is None:
        return None
    customer = links.customer(connection, customer_id=card.customer_id)
    assert customer is not None
    rows = links.cards_of(connection, customer_id=card.customer_id)
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
    context: dict[str, object],
) -> tuple[CardRow, Customer | None]:
    """The requesting partner's card, noted as the request's subject, and its customer."""
    row = _card(deployment, connection, _partner(deployment, connection, domain), card)
    context["subject"] = deployment.subject_reference(connection, row.base)
    return row, _state(connection, row)


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
    links.add_attachment(
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
    customer_id = links.create_customer(
        connection,
        base=base,
        attached_to=deployment.domain(connection, decision.attached_to).id,
        attaching_card=decision.attaching_card,
        rule=decision.rule,
        policy_version=decision.policy_version,
        now=access.now,
    )
    links.set_card_customer(connection, card_ids=card_ids, customer_id=customer_id, now=access.now)
    hub = deployment.hub_domain(connection)
    if hub is not None:
        key = deployment.domain_keyring(connection, hub).active
        links.insert_hub_keys(
            connection,
            [
                {
                    "version": key.version,
                    "kind": "customer",
                    "ref": base,
                    "value": pseudonym_value(key, base),
                }
            ],
        )
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
    links.update_customer(connection, customer_id=customer_id, **values)
    _attach_history(deployment, connection, access, customer_id, decision)


def _dissolve(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    customer_id: int,
    decision: Decision,
) -> None:
    customer = links.customer(connection, customer_id=customer_id)
    assert customer is not None
    links.delete_customer(connection, customer_id=customer_id, base=customer.base)
    _attach_history(deployment, connection, access, customer_id, decision)


def _finish(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    *,
    action: str,
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
        raise PolicyViolation(f"refused by rule {decision.rule}", code=decision.rule)
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
    action: str,
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


_Body = Callable[[Connection, AttachmentPolicy, dict[str, object]], LinkOutcome]


def _run(
    deployment: Deployment, access: Access, action: str, domains: list[str], body: _Body
) -> LinkOutcome:
    context: dict[str, object] = {}
    try:
        with deployment.transaction() as connection:
            links.lock(connection)
            policy = current_policy(connection)
            context["policy"] = policy
            return body(connection, policy, context)
    except PolicyViolation as error:
        in_force = context.get("policy")
        assert isinstance(in_force, AttachmentPolicy)
        subject = context.get("subject")
        _refusal(
            deployment,
            access,
            action=action,
            error=error,
            domains=domains,
            policy=in_force,
            subject=subject if isinstance(subject, str) else None,
        )
        raise


def _notify_merge(
    deployment: Deployment, connection: Connection, access: Access, gone: bytes, kept: bytes
) -> None:
    """Tell the hub that a merged customer's keys now mean the surviving customer's key."""
    hub = deployment.hub_domain(connection)
    if hub is None:
        return
    # Deferred: tiers.inbox builds on the file machinery, which registers cards through here.
    from tiers.inbox import staged_delivery  # noqa: PLC0415

    key = deployment.domain_keyring(connection, hub).active
    new_value = links.hub_value(connection, ref=kept, version=key.version)
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
        for version, value in links.hub_keys_of(connection, refs=[gone]):
            delivery.write([str(Pseudonym(hub.name, version, value)), new])


def backfill_hub_keys(
    deployment: Deployment, connection: Connection, hub: DomainRecord, now: datetime
) -> int:
    """Give every card and customer a key in a newly created hub domain (cards enrolled before
    it existed had none); withdrawn ones excepted. Returns how many keys were issued."""
    key = deployment.domain_keyring(connection, hub).active
    refs = links.all_refs(connection)
    gone = inbox_repo.withdrawn_refs(connection, refs=[r for r, _ in refs])
    rows = [
        {
            "version": key.version,
            "kind": kind,
            "ref": ref,
            "value": pseudonym_value(key, ref),
        }
        for ref, kind in refs
        if ref not in gone
    ]
    links.insert_hub_keys(connection, rows)
    return len(rows)


@audited("card_associate")
def associate(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    card: str,
    other_domain: str,
    other_card: str,
) -> LinkOutcome:
    """Link the requester's card with another partner's card into one alliance customer."""
    require(access, "card_associate", domain)

    def body(
        connection: Connection, policy: AttachmentPolicy, context: dict[str, object]
    ) -> LinkOutcome:
        mine, state_a = _presented(deployment, connection, domain, card, context)
        theirs = _card(
            deployment, connection, _partner(deployment, connection, other_domain), other_card
        )
        state_b = _state(connection, theirs)
        decision = evaluate(
            Associate(domain, _as_card(mine), state_a, _as_card(theirs), state_b), policy
        )
        if decision.accepted and not decision.noop:
            if state_a is None and state_b is None:
                _new_customer(deployment, connection, access, decision, [mine.id, theirs.id])
            elif state_a is not None and state_b is not None:
                survivor = decision.survivor
                assert survivor is not None
                gone = state_b if state_a.id == survivor else state_a
                gone_row = links.customer(connection, customer_id=gone.id)
                kept_row = links.customer(connection, customer_id=survivor)
                assert gone_row is not None and kept_row is not None
                _notify_merge(deployment, connection, access, gone_row.base, kept_row.base)
                links.delete_customer(connection, customer_id=gone.id, base=gone_row.base)
                links.set_card_customer(
                    connection,
                    card_ids=[c.id for c in gone.cards],
                    customer_id=survivor,
                    now=access.now,
                )
                _reattach(deployment, connection, access, survivor, decision)
            else:
                joined = state_a or state_b
                assert joined is not None
                loose = theirs if state_a is not None else mine
                links.set_card_customer(
                    connection, card_ids=[loose.id], customer_id=joined.id, now=access.now
                )
        return _finish(
            deployment,
            connection,
            access,
            action="card_associate",
            decision=decision,
            domains=[domain, other_domain],
            card=mine,
            other=theirs,
        )

    return _run(deployment, access, "card_associate", [domain, other_domain], body)


@audited("card_dissociate")
def dissociate(deployment: Deployment, *, access: Access, domain: str, card: str) -> LinkOutcome:
    """Take the requester's card out of its alliance customer."""
    require(access, "card_dissociate", domain)

    def body(
        connection: Connection, policy: AttachmentPolicy, context: dict[str, object]
    ) -> LinkOutcome:
        mine, state = _presented(deployment, connection, domain, card, context)
        decision = evaluate(Dissociate(domain, _as_card(mine), state), policy)
        if decision.accepted and not decision.noop and state is not None:
            if decision.dissolve:
                _dissolve(deployment, connection, access, state.id, decision)
            else:
                links.set_card_customer(connection, card_ids=[mine.id], customer_id=None, now=None)
                if decision.rule.startswith("reattach."):
                    _reattach(deployment, connection, access, state.id, decision)
        return _finish(
            deployment,
            connection,
            access,
            action="card_dissociate",
            decision=decision,
            domains=[domain],
            card=mine,
        )

    return _run(deployment, access, "card_dissociate", [domain], body)


@audited("customer_transfer")
def transfer(deployment: Deployment, *, access: Access, domain: str, card: str) -> LinkOutcome:
    """The customer asks to move to the requesting SG, presenting their card there."""
    require(access, "customer_transfer", domain)

    def body(
        connection: Connection, policy: AttachmentPolicy, context: dict[str, object]
    ) -> LinkOutcome:
        mine, state = _presented(deployment, connection, domain, card, context)
        decision = evaluate(Transfer(domain, _as_card(mine), state, access.now), policy)
        if decision.accepted and not decision.noop and state is not None:
            _reattach(deployment, connection, access, state.id, decision, transfer=True)
        return _finish(
            deployment,
            connection,
            access,
            action="customer_transfer",
            decision=decision,
            domains=[domain],
            card=mine,
        )

    return _run(deployment, access, "customer_transfer", [domain], body)


@dataclass(frozen=True, slots=True)
class CardView:
    partner: str
    linking_key: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the hub learns about one linking key, in its own domain only."""

    alliance_key: str | None
    cards: list[CardView]
    attached_to: str | None
    policy_version: str | None


def _hub_text(hub: DomainRecord, version: int, value: bytes | None) -> str:
    assert value is not None
    return str(Pseudonym(hub.name, version, value))


def behind_hub_key(
    connection: Connection, kind: str, ref: bytes
) -> tuple[int | None, CardRow | None]:
    """The customer (if any) and the card (for a card key) that a hub key stands for."""
    if kind == "customer":
        return links.customer_by_base(connection, base=ref), None
    card_row = links.card_by_ref(connection, ref=ref)
    return (card_row.customer_id if card_row is not None else None), card_row


def _resolve_one(
    connection: Connection, hub: DomainRecord, ring: Keyring, text: str
) -> tuple[Resolution, bytes]:
    key = ring.active
    pseudonym = parse_for_domain(text, domain=hub.name, keyring=ring)
    found = links.hub_ref(connection, version=pseudonym.version, value=pseudonym.value)
    if found is None:
        raise NotFound("unknown linking key", code="unknown_key")
    kind, ref = found
    customer_id, card_row = behind_hub_key(connection, kind, ref)
    if kind == "card" and card_row is None:
        raise NotFound("unknown linking key", code="unknown_key")
    if customer_id is None:
        assert card_row is not None
        view = CardView(
            card_row.partner,
            _hub_text(
                hub, key.version, links.hub_value(connection, ref=card_row.ref, version=key.version)
            ),
            card_row.enrolled_at,
        )
        return Resolution(None, [view], None, None), card_row.base
    customer = links.customer(connection, customer_id=customer_id)
    if customer is None:
        raise NotFound("unknown linking key", code="unknown_key")
    rows = links.cards_of(connection, customer_id=customer_id)
    views = [
        CardView(
            r.partner,
            _hub_text(
                hub, key.version, links.hub_value(connection, ref=r.ref, version=key.version)
            ),
            r.linked_at or r.enrolled_at,
        )
        for r in rows
    ]
    alliance = _hub_text(
        hub, key.version, links.hub_value(connection, ref=customer.base, version=key.version)
    )
    subject_base = card_row.base if card_row is not None else rows[0].base
    return Resolution(alliance, views, customer.attached_to, customer.policy_version), subject_base


@audited("link_resolve", domain_arg=None)
def resolve(
    deployment: Deployment, *, access: Access, linking_keys: Sequence[str], strict: bool = False
) -> list[Resolution | TiersError]:
    """Resolve hub linking keys (card or customer keys) in the hub domain, in order; an
    unknown or malformed key gets its error in its place (with ``strict``, it is raised)."""
    results: list[Resolution | TiersError] = []
    with deployment.transaction() as connection:
        hub = deployment.hub_domain(connection)
        if hub is None:
            raise NotFound("no hub domain", code="unknown_domain")
        require(access, "link_resolve", hub.name)
        ring = deployment.domain_keyring(connection, hub)  # unwrapped once for the batch
        bases: list[bytes] = []
        for text in linking_keys:
            try:
                resolution, base = _resolve_one(connection, hub, ring, text)
            except TiersError as error:
                if strict:
                    raise
                results.append(error)
                continue
            results.append(resolution)
            bases.append(base)
        deployment.record(
            connection,
            access,
            action="link_resolve",
            domains=[hub.name],
            counts=Counts(len(linking_keys), len(bases), len(linking_keys) - len(bases)),
            subject=deployment.subject_reference(connection, bases[0])
            if len(linking_keys) == 1 and bases
            else None,
        )
    return results
