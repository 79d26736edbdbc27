"""Partner cards: their identity, their enrolment with a hub linking key, and finding one.

A card is one partner's card: its reference is ``HMAC(K_base, "card at partner" | partner | B)``,
so that the same number at two partners is two cards. Enrolling a card gives it a key in the hub
domain, unless the card has left the alliance. How cards are linked into customers is
:mod:`tiers.links`; what the hub learns from a key is :mod:`tiers.resolution`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from audit import Action, Counts
from errors import (
    NotFound,
    TiersError,
)
from keys import DomainKey, length_prefixed
from tiers import _hub_keys as hub_keys
from tiers import _subject_index as subject_index
from tiers import schemes
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment, unknown_domain
from tiers.pseudonyms import Pseudonym
from tiers.storage import inbox as inbox_repo
from tiers.storage import links as links_repo
from tiers.storage import subjects
from tiers.storage.domains import DomainRecord
from tiers.storage.links import CardRow

__all__ = [
    "CardEnrolment",
    "CardState",
    "card_of",
    "card_ref",
    "card_refs",
    "card_state",
    "enrol_cards",
    "partner_card",
    "partner_domain",
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
        refs = card_refs(self.base_key, self.partner.name, unique)
        self.enrol_refs(list(zip(refs, unique, strict=True)), now)

    def enrol_refs(self, refs: Sequence[tuple[bytes, bytes]], now: datetime) -> None:
        """:meth:`enrol` of cards whose references the caller has already computed, as
        ``(ref, base)`` without repeats."""
        if not refs or self.partner.role != "partner":
            return
        links_repo.enrol(self.connection, partner_id=self.partner.id, cards_=refs, now=now)
        if self.hub is None or self.hub_key is None:
            return
        # A card that left the alliance never gets a hub key again.
        gone = inbox_repo.withdrawn_refs(self.connection, refs=[r for r, _ in refs])
        hub_keys.issue(
            self.connection, self.hub_key, [(r, "card") for r, _ in refs if r not in gone]
        )


@audited(Action.CARD_ENROL)
def enrol_cards(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    values: Sequence[str],
    enrolled_at: datetime | None = None,
) -> list[str | TiersError]:
    """Enrol a partner's cards, each named by its clear number or by the partner's own
    pseudonym of it (a blind one under the ``oprf`` scheme); their pseudonyms in the active
    version in order, errors in place."""
    require(access, Action.CARD_ENROL, domain)
    deployment.budget.admit(access, len(values))
    with deployment.transaction() as connection:
        partner = partner_domain(deployment, connection, domain)
        scheme = schemes.pseudonymiser(deployment, connection)
        domain_key = deployment.domain_keyring(connection, partner).active
        found = _card_subjects(deployment, connection, scheme, partner, values)
        bases = [b for b in found if isinstance(b, bytes)]
        pairs = list(zip(bases, scheme.values(partner, domain_key, bases), strict=True))
        texts = iter(str(Pseudonym(partner.name, domain_key.version, v)) for _, v in pairs)
        results: list[str | TiersError] = [
            next(texts) if isinstance(b, bytes) else _unknown_pseudonym() if b is None else b
            for b in found
        ]
        subjects.register(
            connection,
            domain_id=partner.id,
            version=domain_key.version,
            pairs=pairs,
            now=access.now,
        )
        CardEnrolment(deployment, connection, partner).enrol(bases, enrolled_at or access.now)
        entry = deployment.record(
            connection,
            access,
            action=Action.CARD_ENROL,
            domains=[domain],
            counts=Counts(len(values), len(pairs), len(values) - len(pairs)),
            subject=deployment.subject_reference(connection, pairs[0][0])
            if len(values) == 1 and pairs
            else None,
        )
        subject_index.index(deployment, connection, entry, bases)
    return results


def _unknown_pseudonym() -> NotFound:
    return NotFound("no card of this partner has that pseudonym", code="unknown_pseudonym")


def _card_subjects(
    deployment: Deployment,
    connection: Connection,
    scheme: schemes.Pseudonymiser,
    partner: DomainRecord,
    values: Sequence[str],
) -> list[bytes | TiersError | None]:
    """The subject of each card named by a clear number or by the partner's pseudonym, in
    order: the error of a value in its place, ``None`` for a pseudonym with no subject (under
    ``hmac``, one the service never issued). A clear number asks the domain's normalisation
    first, which a blind-only domain refuses for the whole call."""
    named = iter(
        schemes.subjects_named(
            scheme,
            partner,
            deployment.domain_keyring(connection, partner),
            [value for value in values if ".v" in value],
        )
    )
    clear = iter(
        schemes.clear_bases(
            scheme,
            "card",
            functools.partial(deployment.normalisation, partner),
            [value for value in values if ".v" not in value],
        )
    )
    return [next(named) if ".v" in value else next(clear) for value in values]


def partner_domain(deployment: Deployment, connection: Connection, name: str) -> DomainRecord:
    """The partner domain ``name``. A domain of another role (the hub's, the audit domain) is
    answered exactly as one that does not exist (:class:`~errors.NotFound`,
    ``unknown_domain``): a partner learns nothing of the alliance's other domains from it."""
    record = deployment.domain(connection, name)
    if record.role != "partner":
        raise unknown_domain()
    return record


def card_of(
    deployment: Deployment, connection: Connection, partner: DomainRecord, base: bytes
) -> CardRow | None:
    """The partner's enrolled card whose number has the base pseudonym ``base``, if any."""
    ref = card_ref(deployment.base_keyring(connection).active, partner.name, base)
    return links_repo.card_by_ref(connection, ref=ref)


def partner_card(
    deployment: Deployment, connection: Connection, partner: DomainRecord, value: str
) -> CardRow:
    """The partner's card named by a clear number or by the partner's own pseudonym."""
    scheme = schemes.pseudonymiser(deployment, connection)
    (base,) = _card_subjects(deployment, connection, scheme, partner, [value])
    if isinstance(base, TiersError):
        raise base
    row = None if base is None else card_of(deployment, connection, partner, base)
    if row is None:
        raise NotFound("no card of this partner by that number", code="unknown_card")
    return row


@dataclass(frozen=True, slots=True)
class CardState:
    """What a partner may know of its own card: whether it is linked, to how many cards of
    other partners (never which), and the customer's SG."""

    enrolled_at: datetime
    linked: bool
    linked_at: datetime | None
    other_partners_cards: int
    attached_to: str | None
    attached_here: bool  # the asking partner is the customer's SG


@audited(Action.CARD_SHOW)
def card_state(deployment: Deployment, *, access: Access, domain: str, card: str) -> CardState:
    """The state of the partner's card ``card`` (its number, or its pseudonym); logged under
    the card's subject reference. Nothing of the other partners' cards but their number."""
    require(access, Action.CARD_SHOW, domain)
    deployment.budget.admit(access, 1)
    with deployment.transaction() as connection:
        partner = partner_domain(deployment, connection, domain)
        row = partner_card(deployment, connection, partner, card)
        customer = None
        others = 0
        if row.customer_id is not None:
            customer = links_repo.customer(connection, customer_id=row.customer_id)
            cards = links_repo.cards_of(connection, customer_id=row.customer_id)
            others = sum(1 for c in cards if c.partner != partner.name)
        deployment.record(
            connection,
            access,
            action=Action.CARD_SHOW,
            domains=[domain],
            subject=deployment.subject_reference(connection, row.base),
            counts=Counts(records_in=1, records_out=1),
        )
    return CardState(
        enrolled_at=row.enrolled_at,
        linked=customer is not None,
        linked_at=row.linked_at,
        other_partners_cards=others,
        attached_to=None if customer is None else customer.attached_to,
        attached_here=customer is not None and customer.attached_to == partner.name,
    )
