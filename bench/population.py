"""An alliance of n customers for the scale benchmark, built fast enough to reach 10⁶.

Linking two cards through ``associate`` takes about 5 ms (a policy decision, an access-log
entry and a dozen statements), so a million customers that way would take hours. Here:

- every card is enrolled by the real operation (``enrol_cards``, 10,000 at a time), so the
  subjects, cards and card hub keys are exactly what the service writes;
- the first pair is linked by the real ``associate``: the attachment policy decides;
- every other pair copies that decision, row for row, into the tables ``associate`` writes
  (the customer with a fresh random base, both cards' customer, the customer's hub linking
  key, the attachment history), in bulk. These rows are not in the access log: they stand
  for a history of ``associate`` calls, not for one.

:func:`check` then resolves keys with ``strict=True``: a population the service could not read
fails the benchmark instead of timing errors.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import bindparam, select, update

from tiers.admin import add_domain, initialise
from tiers.auditing import Access
from tiers.cards import card_ref, enrol_cards
from tiers.deployment import Deployment
from tiers.links import associate
from tiers.pseudonyms import Pseudonym, base_pseudonym, domain_pseudonym
from tiers.resolution import Resolution, resolve
from tiers.settings import Settings
from tiers.storage._dialect import bulk_insert_ignoring_duplicates
from tiers.storage.tables import attachments, cards, customers, hub_keys

__all__ = ["build", "check"]

_ENROL_BATCH = 10_000
_PARTNERS = ("casino", "sncf")


def _numbers(partner: int, customers_: int) -> list[str]:
    start = (10_000_000, 70_000_000)[partner]
    return [str(start + n) for n in range(customers_)]


def build(settings: Settings, customers_: int, operator: Access) -> list[str]:
    """``customers_`` customers, each a Casino and an SNCF card, in a new home; returns each
    customer's hub linking key, as the hub receives it in exchanges."""
    initialise(settings, access=operator)
    deployment = Deployment.open(settings)
    try:
        for name in _PARTNERS:
            add_domain(deployment, access=operator, name=name, role="partner")
        add_domain(deployment, access=operator, name="hub", role="hub")
        numbers = [_numbers(p, customers_) for p in range(len(_PARTNERS))]
        for name, values in zip(_PARTNERS, numbers, strict=True):
            for start in range(0, customers_, _ENROL_BATCH):
                chunk = values[start : start + _ENROL_BATCH]
                enrol_cards(deployment, access=operator, domain=name, values=chunk)
        associate(
            deployment,
            access=operator,
            domain=_PARTNERS[0],
            card=numbers[0][0],
            other_domain=_PARTNERS[1],
            other_card=numbers[1][0],
        )
        return _copy_first_customer(deployment, numbers, operator.now)
    finally:
        deployment.close()


def _copy_first_customer(
    deployment: Deployment, numbers: list[list[str]], now: datetime
) -> list[str]:
    with deployment.transaction() as connection:
        base_key = deployment.base_keyring(connection).active
        hub = deployment.hub_domain(connection)
        assert hub is not None
        hub_key = deployment.domain_keyring(connection, hub).active
        ids = dict(connection.execute(select(cards.c.ref, cards.c.id)).tuples().all())
        pairs = [
            tuple(
                ids[card_ref(base_key, partner, base_pseudonym(base_key, "card", number))]
                for partner, number in zip(_PARTNERS, row, strict=True)
            )
            for row in zip(*numbers, strict=True)
        ]
        first = connection.execute(select(customers)).one()
        history = connection.execute(select(attachments)).one()
        # The attaching card of every copy is at the partner the policy chose for the first.
        side = pairs[0].index(first.attaching_card)
        bases = [secrets.token_bytes(32) for _ in pairs[1:]]
        new_ids = range(first.id + 1, first.id + len(pairs))
        bulk_insert_ignoring_duplicates(
            connection,
            customers,
            ["id", "base", "attaching_card"],
            [
                (cid, base, pair[side])
                for cid, base, pair in zip(new_ids, bases, pairs[1:], strict=True)
            ],
            {
                "attached_to": first.attached_to,
                "rule": first.rule,
                "policy_version": first.policy_version,
                "attached_at": now,
                "created_at": now,
            },
        )
        connection.execute(
            update(cards)
            .where(cards.c.id == bindparam("card"))
            .values(customer_id=bindparam("customer"), linked_at=now),
            [
                {"card": card, "customer": cid}
                for cid, pair in zip(new_ids, pairs[1:], strict=True)
                for card in pair
            ],
        )
        values = [domain_pseudonym(hub_key, hub.name, base).value for base in bases]
        bulk_insert_ignoring_duplicates(
            connection,
            hub_keys,
            ["value", "ref"],
            list(zip(values, bases, strict=True)),
            {"version": hub_key.version, "kind": "customer"},
        )
        bulk_insert_ignoring_duplicates(
            connection,
            attachments,
            ["customer_id", "card_id"],
            [(cid, pair[side]) for cid, pair in zip(new_ids, pairs[1:], strict=True)],
            {
                "partner_id": history.partner_id,
                "rule": history.rule,
                "policy_version": history.policy_version,
                "decided_at": now,
                "actor": history.actor,
            },
        )
        first_key = connection.execute(
            select(hub_keys.c.value).where(hub_keys.c.ref == first.base)
        ).scalar_one()
    return [str(Pseudonym(hub.name, hub_key.version, v)) for v in [first_key, *values]]


def check(deployment: Deployment, access: Access, keys: list[str]) -> None:
    """Resolve a spread of ``keys`` strictly: each must be its customer, with both cards."""
    sample = keys[:: max(1, len(keys) // 50)]
    found = resolve(deployment, access=access, linking_keys=sample, strict=True)
    for key, resolution in zip(sample, found, strict=True):
        if (
            not isinstance(resolution, Resolution)
            or resolution.alliance_key != key
            or len(resolution.cards) != len(_PARTNERS)
        ):
            raise RuntimeError("the benchmark population does not resolve as built")
