"""Campaigns: the hub's list of linking keys routed to each customer's SG only, as pseudonyms
of that SG's domain; no partner receives a customer attached to another SG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from audit import Action, Counts
from errors import NotFound, TiersError
from keys import DomainKey, Keyring
from tiers import _subject_index as subject_index
from tiers import schemes
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.inbox import staged_delivery
from tiers.pseudonyms import Pseudonym, parse_for_domain
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord

__all__ = ["CampaignReport", "send_campaign"]

# Linking keys routed together: a few statements per batch instead of five per key.
CAMPAIGN_BATCH = 2000


@dataclass(slots=True)
class CampaignReport:
    per_sg: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, str] = field(default_factory=dict)


def _campaign_targets(
    connection: Connection,
    hub: DomainRecord,
    ring: Keyring,
    texts: Sequence[str],
    dropped: Counter[str],
) -> list[tuple[str, bytes]]:
    """``(SG, base of the customer's card there)`` for each linking key that reaches an SG,
    in the keys' order; the others are counted in ``dropped`` (``malformed``, ``unknown``,
    ``no_sg``). A few statements for the whole batch, not five a key."""
    keys: list[tuple[int, bytes]] = []
    for text in texts:
        try:
            pseudonym = parse_for_domain(text, domain=hub.name, keyring=ring)
        except TiersError:
            dropped["malformed"] += 1
            continue
        keys.append((pseudonym.version, pseudonym.value))
    refs = links_repo.hub_refs(connection, wanted=keys)
    of_cards = links_repo.cards_by_refs(
        connection, refs=[ref for kind, ref in refs.values() if kind == "card"]
    )
    of_bases = links_repo.customers_by_bases(
        connection, bases=[ref for kind, ref in refs.values() if kind == "customer"]
    )
    owners: list[int] = []
    for key in keys:
        if key not in refs:
            dropped["unknown"] += 1
            continue
        kind, ref = refs[key]
        if kind == "customer":
            owner = of_bases.get(ref)
        else:
            card = of_cards.get(ref)
            owner = None if card is None else card.customer_id
        if owner is None:
            dropped["no_sg"] += 1
            continue
        owners.append(owner)
    found = links_repo.customers_by_ids(connection, ids=owners)
    their_cards = links_repo.cards_of_customers(connection, ids=list(found))
    targets: list[tuple[str, bytes]] = []
    for owner in owners:
        customer = found[owner]
        at_sg = [c for c in their_cards[owner] if c.partner == customer.attached_to]
        chosen = next((c for c in at_sg if c.id == customer.attaching_card), at_sg[0])
        targets.append((customer.attached_to, chosen.base))
    return targets


@dataclass(slots=True)
class _Routing:
    """A campaign's customers, routed to their SGs as they are found: per SG its pseudonyms in
    order, once each; what was dropped and why; each customer's card at its SG (for the subject
    index)."""

    deployment: Deployment
    connection: Connection
    dropped: Counter[str] = field(default_factory=Counter)
    routed: dict[str, dict[str, None]] = field(default_factory=dict)
    sgs: dict[str, tuple[DomainRecord, DomainKey]] = field(default_factory=dict)
    reached: list[bytes] = field(default_factory=list)
    scheme: schemes.Pseudonymiser = field(init=False)

    def __post_init__(self) -> None:
        self.scheme = schemes.pseudonymiser(self.deployment, self.connection)

    def route(self, hub: DomainRecord, ring: Keyring, batch: list[str]) -> None:
        for sg_name, base in _campaign_targets(self.connection, hub, ring, batch, self.dropped):
            if sg_name not in self.sgs:  # each SG's key unwrapped once per campaign
                sg = self.deployment.domain(self.connection, sg_name)
                key = self.deployment.domain_keyring(self.connection, sg).active
                self.sgs[sg_name] = (sg, key)
            sg, key = self.sgs[sg_name]
            self.reached.append(base)
            (value,) = self.scheme.values(sg, key, [base])
            text = str(Pseudonym(sg_name, key.version, value))
            listed = self.routed.setdefault(sg_name, {})
            if text in listed:  # another key of a customer already listed
                self.dropped["same_customer"] += 1
            listed[text] = None

    def deliver(self, access: Access, name: str, report: CampaignReport) -> None:
        """Each SG's delivery, its pseudonyms sorted (the order of the hub's list is not told)."""
        for sg_name, pseudonyms in sorted(self.routed.items()):
            sg, _ = self.sgs[sg_name]
            with staged_delivery(
                self.deployment,
                self.connection,
                recipient=sg,
                kind="campaign",
                name=name,
                header=["pseudonym"],
                sender=access.actor,
                now=access.now,
            ) as delivery:
                for pseudonym_text in sorted(pseudonyms):
                    delivery.write([pseudonym_text])
            report.per_sg[sg_name] = delivery.rows
            report.deliveries[sg_name] = delivery.id
        report.dropped = dict(self.dropped)


@audited(Action.CAMPAIGN_SEND, domain_arg=None)
def send_campaign(
    deployment: Deployment,
    *,
    access: Access,
    name: str,
    linking_keys: Sequence[str],
    keys_per_batch: int = CAMPAIGN_BATCH,
) -> CampaignReport:
    """Route the hub's list of linking keys to each customer's attached SG, as pseudonyms of
    that SG's domain; no partner receives a customer attached to another SG. The keys are
    routed ``keys_per_batch`` at a time; the deliveries are the same whatever the batch. A
    customer reached through two keys (a card's and the customer's, say) is delivered once and
    the second key counted in ``dropped`` as ``same_customer``."""
    report = CampaignReport()
    with deployment.transaction() as connection:
        hub = deployment.hub_domain(connection)
        if hub is None:
            raise NotFound("no hub domain", code="unknown_domain")
        require(access, Action.CAMPAIGN_SEND, hub.name)
        ring = deployment.domain_keyring(connection, hub)
        routing = _Routing(deployment, connection)
        unique = list(dict.fromkeys(linking_keys))
        for start in range(0, len(unique), keys_per_batch):
            routing.route(hub, ring, unique[start : start + keys_per_batch])
        routing.deliver(access, name, report)
        entry = deployment.record(
            connection,
            access,
            action=Action.CAMPAIGN_SEND,
            domains=[hub.name, *sorted(routing.routed)],
            counts=Counts(
                len(linking_keys),
                sum(report.per_sg.values()),
                sum(routing.dropped.values()),
            ),
            detail={"campaign": name[:64]},
        )
        subject_index.index(deployment, connection, entry, routing.reached)
    return report
