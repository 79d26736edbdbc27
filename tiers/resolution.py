"""The hub's resolution of its linking keys: the cards and customer behind each, in the hub's
own domain only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from audit import Action, Counts
from errors import NotFound, TiersError
from keys import Keyring
from tiers.auditing import Access, Pending, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.pseudonyms import Pseudonym, parse_for_domain
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord
from tiers.storage.links import CardRow

__all__ = ["CardView", "Resolution", "resolve", "resolve_together"]


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
        return links_repo.customer_by_base(connection, base=ref), None
    card_row = links_repo.card_by_ref(connection, ref=ref)
    return (card_row.customer_id if card_row is not None else None), card_row


def _resolve_one(
    connection: Connection, hub: DomainRecord, ring: Keyring, text: str
) -> tuple[Resolution, bytes]:
    key = ring.active
    pseudonym = parse_for_domain(text, domain=hub.name, keyring=ring)
    found = links_repo.hub_ref(connection, version=pseudonym.version, value=pseudonym.value)
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
                hub,
                key.version,
                links_repo.hub_value(connection, ref=card_row.ref, version=key.version),
            ),
            card_row.enrolled_at,
        )
        return Resolution(None, [view], None, None), card_row.base
    customer = links_repo.customer(connection, customer_id=customer_id)
    if customer is None:
        raise NotFound("unknown linking key", code="unknown_key")
    rows = links_repo.cards_of(connection, customer_id=customer_id)
    views = [
        CardView(
            r.partner,
            _hub_text(
                hub, key.version, links_repo.hub_value(connection, ref=r.ref, version=key.version)
            ),
            r.linked_at or r.enrolled_at,
        )
        for r in rows
    ]
    alliance = _hub_text(
        hub, key.version, links_repo.hub_value(connection, ref=customer.base, version=key.version)
    )
    subject_base = card_row.base if card_row is not None else rows[0].base
    return Resolution(alliance, views, customer.attached_to, customer.policy_version), subject_base


@audited(Action.LINK_RESOLVE, domain_arg=None)
def resolve(
    deployment: Deployment, *, access: Access, linking_keys: Sequence[str], strict: bool = False
) -> list[Resolution | TiersError]:
    """Resolve hub linking keys (card or customer keys) in the hub domain, in order; an
    unknown or malformed key gets its error in its place (with ``strict``, it is raised)."""
    with deployment.transaction() as connection:
        (results,) = _resolve(deployment, connection, [(access, linking_keys)], strict=strict)
    return results


def resolve_together(
    deployment: Deployment, requests: Sequence[tuple[Access, str]]
) -> list[list[Resolution | TiersError]]:
    """:func:`resolve` (strict) of several requests for one key each, in one transaction with
    an access-log entry per request (a group commit of API calls, see :mod:`api.calls`). When
    any request is refused or any key unknown, nothing is recorded and the error is raised: the
    caller then makes each request alone, which records its own outcome."""
    with deployment.transaction() as connection:
        return _resolve(
            deployment, connection, [(access, [key]) for access, key in requests], strict=True
        )


def _resolve(
    deployment: Deployment,
    connection: Connection,
    requests: Sequence[tuple[Access, Sequence[str]]],
    *,
    strict: bool,
) -> list[list[Resolution | TiersError]]:
    hub = deployment.hub_domain(connection)
    if hub is None:
        raise NotFound("no hub domain", code="unknown_domain")
    ring = deployment.domain_keyring(connection, hub)  # unwrapped once for all
    answers: list[list[Resolution | TiersError]] = []
    entries: list[Pending] = []
    for access, linking_keys in requests:
        require(access, Action.LINK_RESOLVE, hub.name)
        results: list[Resolution | TiersError] = []
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
        entries.append(
            Pending(
                access,
                Action.LINK_RESOLVE,
                domains=[hub.name],
                counts=Counts(len(linking_keys), len(bases), len(linking_keys) - len(bases)),
                subject=deployment.subject_reference(connection, bases[0])
                if len(linking_keys) == 1 and bases
                else None,
            )
        )
        answers.append(results)
    deployment.record_many(connection, entries)
    return answers
