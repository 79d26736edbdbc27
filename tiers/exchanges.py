"""Exchanges: a partner's file to the hub in hub linking keys; campaigns from the hub back to
each customer's SG only; customers withdrawing from the alliance.

What crosses always crosses in the recipient's domain: the hub receives hub keys (one customer
key for every card of a linked customer), a partner receives pseudonyms of its own domain for
its own attached customers. Deliveries land in inboxes (:mod:`tiers.inbox`) whole or not at all.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import IO

from sqlalchemy import Connection

from audit import Counts
from keys import DomainKey
from policy.exchanges import ExchangeSchema, load_exchanges, row_problems
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.errors import (
    InvalidFile,
    InvalidIdentifier,
    NotFound,
    PolicyViolation,
    TiersError,
)
from tiers.files import FIELD_SIZE_LIMIT, Reject, _open_source, _read_header, _records
from tiers.identifiers import get_kind
from tiers.inbox import staged_delivery
from tiers.links import CardEnrolment, behind_hub_key, card_ref, partner_card
from tiers.pseudonyms import (
    Pseudonym,
    base_pseudonym,
    domain_pseudonym,
    parse_for_domain,
    pseudonym_value,
)
from tiers.storage import bulk_load, subjects
from tiers.storage import inbox as inbox_repo
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord

__all__ = [
    "CampaignReport",
    "ExchangeReport",
    "exchange_schemas",
    "send_campaign",
    "send_exchange",
    "withdraw_customer",
]


def exchange_schemas(deployment: Deployment) -> dict[str, ExchangeSchema]:
    """The exchange types in force (``TIERS_EXCHANGES_FILE``, default the shipped file)."""
    path = deployment.settings.exchanges_file
    data = (
        path.read_bytes()
        if path is not None
        else resources.files("policy").joinpath("exchanges.toml").read_bytes()
    )
    return load_exchanges(data)


@dataclass(slots=True)
class ExchangeReport:
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    delivery: str = ""
    first_rejects: list[Reject] = field(default_factory=list)


class _HubKeys:
    """Hub linking keys of a partner's identifiers, in the hub's active key version."""

    def __init__(
        self,
        deployment: Deployment,
        connection: Connection,
        partner: DomainRecord,
        schema: ExchangeSchema,
        now: datetime,
    ) -> None:
        self.enrolment = CardEnrolment(deployment, connection, partner)
        if self.enrolment.hub is None or self.enrolment.hub_key is None:
            raise NotFound("no hub domain to deliver to", code="unknown_domain")
        self.hub = self.enrolment.hub
        self.hub_key = self.enrolment.hub_key
        self.base_key = self.enrolment.base_key
        self.connection = connection
        self.partner = partner
        self.now = now
        self.kind = get_kind(schema.identifier_kind)
        self.partner_ring = deployment.domain_keyring(connection, partner)
        self.partner_key = self.partner_ring.active
        self.options = deployment.normalisation(partner)

    def _base(self, value: str) -> bytes:
        if ".v" in value and value.startswith(self.partner.name + ".v"):
            pseudonym = parse_for_domain(value, domain=self.partner.name, keyring=self.partner_ring)
            base = subjects.lookup(
                self.connection,
                domain_id=self.partner.id,
                version=pseudonym.version,
                value=pseudonym.value,
            )
            if base is None:
                raise NotFound("unknown pseudonym", code="unknown_pseudonym")
            return base
        normalised = self.kind.normaliser(value, self.options)
        base = base_pseudonym(self.base_key, self.kind.name, normalised)
        subjects.register(
            self.connection,
            domain_id=self.partner.id,
            version=self.partner_key.version,
            pairs=[(base, pseudonym_value(self.partner_key, base))],
            now=self.now,
        )
        return base

    def key(self, value: str) -> str:
        """The hub key for one identifier; raises a :class:`TiersError` with a row code."""
        base = self._base(value)
        if self.kind.name != "card":
            return str(domain_pseudonym(self.hub_key, self.hub.name, base))
        self.enrolment.enrol([base], self.now)
        ref = card_ref(self.base_key, self.partner.name, base)
        card = links_repo.card_by_ref(self.connection, ref=ref)
        if card is None or inbox_repo.withdrawn_refs(self.connection, refs=[ref]):
            raise PolicyViolation("the customer withdrew from the alliance", code="withdrawn")
        target = ref
        if card.customer_id is not None:
            customer = links_repo.customer(self.connection, customer_id=card.customer_id)
            assert customer is not None
            target = customer.base
        value_ = links_repo.hub_value(self.connection, ref=target, version=self.hub_key.version)
        if value_ is None:
            raise NotFound("no hub key", code="no_hub_key")
        return str(Pseudonym(self.hub.name, self.hub_key.version, value_))


@audited("exchange_send")
def send_exchange(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    exchange_type: str,
    source: Path | IO[bytes],
    delimiter: str = ",",
) -> ExchangeReport:
    """Send a partner file of type ``exchange_type`` to the hub, in hub linking keys.

    The header must name the identifier column and only declared columns (else the whole file
    is refused, ``undeclared_column``); each row whose identifier does not normalise or whose
    value does not fit its type is rejected (``line,column,code``). The hub's delivery and the
    sender's rejects delivery appear together, when the whole file was read.
    """
    require(access, "exchange_send", domain)
    schemas = exchange_schemas(deployment)
    schema = schemas.get(exchange_type)
    if schema is None:
        raise NotFound(
            f"unknown exchange type {exchange_type!r}; known: {', '.join(schemas)}",
            code="unknown_exchange",
        )
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    report = ExchangeReport()
    with ExitStack() as stack:
        raw, text, _ = _open_source(source)
        stack.callback(raw.close)
        reader = csv.reader(text, delimiter=delimiter)
        header = _read_header(reader)
        if schema.identifier_column not in header:
            raise InvalidFile(
                f"the file has no {schema.identifier_column!r} column", code="no_identifier_column"
            )
        for name in header:
            if name != schema.identifier_column and name not in schema.columns:
                raise InvalidFile(
                    f"column {name!r} is not declared for exchange {exchange_type!r}",
                    code="undeclared_column",
                )
        if len(set(header)) != len(header):
            raise InvalidFile("the header names a column twice", code="duplicate_column")
        connection = stack.enter_context(deployment.transaction())
        stack.enter_context(bulk_load(connection))
        partner = deployment.domain(connection, domain)
        keys = _HubKeys(deployment, connection, partner, schema, access.now)
        payload = [n for n in header if n != schema.identifier_column]
        identifier = header.index(schema.identifier_column)
        rejects: list[Reject] = []
        with staged_delivery(
            deployment,
            connection,
            recipient=keys.hub,
            kind="exchange",
            name=exchange_type,
            header=["linking_key", *payload],
            sender=domain,
            now=access.now,
        ) as delivery:
            for line, row in _records(reader):
                report.rows_in += 1
                problems = row_problems(row, header, identifier, schema)
                hub_key = None
                if len(row) == len(header):
                    try:
                        hub_key = keys.key(row[identifier])
                    except (InvalidIdentifier, PolicyViolation, NotFound) as error:
                        problems.insert(0, (schema.identifier_column, error.code))
                if problems or hub_key is None:
                    report.rows_rejected += 1
                    rejects.extend(Reject(line, column, code) for column, code in problems)
                    continue
                delivery.write([hub_key, *(row[header.index(n)] for n in payload)])
                report.rows_out += 1
            if report.rows_in == 0:
                raise InvalidFile("the file has a header but no data rows", code="no_rows")
        if rejects:
            with staged_delivery(
                deployment,
                connection,
                recipient=partner,
                kind="rejects",
                name=exchange_type,
                header=["line", "column", "code"],
                sender="tiers",
                now=access.now,
            ) as back:
                for reject in rejects:
                    back.write([str(reject.line), reject.column, reject.code])
        report.first_rejects = rejects[:10]
        deployment.record(
            connection,
            access,
            action="exchange_send",
            domains=[domain, keys.hub.name],
            counts=Counts(report.rows_in, report.rows_out, report.rows_rejected),
            detail={"exchange": exchange_type},
        )
    return report


@dataclass(slots=True)
class CampaignReport:
    per_sg: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, str] = field(default_factory=dict)


@audited("campaign_send", domain_arg=None)
def send_campaign(
    deployment: Deployment, *, access: Access, name: str, linking_keys: Sequence[str]
) -> CampaignReport:
    """Route the hub's list of linking keys to each customer's attached SG, as pseudonyms of
    that SG's domain; no partner receives a customer attached to another SG."""
    report = CampaignReport()
    dropped: Counter[str] = Counter()
    routed: dict[str, list[str]] = {}
    sgs: dict[str, tuple[DomainRecord, DomainKey]] = {}
    with deployment.transaction() as connection:
        hub = deployment.hub_domain(connection)
        if hub is None:
            raise NotFound("no hub domain", code="unknown_domain")
        require(access, "campaign_send", hub.name)
        ring = deployment.domain_keyring(connection, hub)
        for text in dict.fromkeys(linking_keys):
            try:
                pseudonym = parse_for_domain(text, domain=hub.name, keyring=ring)
            except TiersError:
                dropped["malformed"] += 1
                continue
            found = links_repo.hub_ref(connection, version=pseudonym.version, value=pseudonym.value)
            if found is None:
                dropped["unknown"] += 1
                continue
            customer_id, _ = behind_hub_key(connection, *found)
            if customer_id is None:
                dropped["no_sg"] += 1
                continue
            customer = links_repo.customer(connection, customer_id=customer_id)
            assert customer is not None
            cards = links_repo.cards_of(connection, customer_id=customer_id)
            at_sg = [c for c in cards if c.partner == customer.attached_to]
            chosen = next((c for c in at_sg if c.id == customer.attaching_card), at_sg[0])
            if customer.attached_to not in sgs:  # each SG's key unwrapped once per campaign
                sg = deployment.domain(connection, customer.attached_to)
                sgs[sg.name] = (sg, deployment.domain_keyring(connection, sg).active)
            sg, key = sgs[customer.attached_to]
            routed.setdefault(sg.name, []).append(str(domain_pseudonym(key, sg.name, chosen.base)))
        for sg_name, pseudonyms in sorted(routed.items()):
            sg, _ = sgs[sg_name]
            with staged_delivery(
                deployment,
                connection,
                recipient=sg,
                kind="campaign",
                name=name,
                header=["pseudonym"],
                sender=access.actor,
                now=access.now,
            ) as delivery:
                for pseudonym_text in sorted(set(pseudonyms)):
                    delivery.write([pseudonym_text])
            report.per_sg[sg_name] = delivery.rows
        report.dropped = dict(dropped)
        deployment.record(
            connection,
            access,
            action="campaign_send",
            domains=[hub.name, *sorted(routed)],
            counts=Counts(
                len(linking_keys),
                sum(report.per_sg.values()),
                sum(dropped.values()),
            ),
            detail={"campaign": name[:64]},
        )
    return report


@audited("customer_withdraw")
def withdraw_customer(deployment: Deployment, *, access: Access, domain: str, card: str) -> int:
    """A customer leaves the alliance, through their SG: links removed, hub keys retired for
    good, and a withdrawal notice (the hub keys to erase) delivered to the hub. Returns the
    number of hub keys withdrawn."""
    require(access, "customer_withdraw", domain)
    with deployment.transaction() as connection:
        links_repo.lock(connection)
        partner = deployment.domain(connection, domain)
        row = partner_card(deployment, connection, partner, card)
        customer = None
        refs = [row.ref]
        if row.customer_id is not None:
            customer = links_repo.customer(connection, customer_id=row.customer_id)
            assert customer is not None
            if customer.attached_to != domain:
                raise PolicyViolation(
                    "only the customer's SG may withdraw them", code="withdraw.not_sg"
                )
            refs = [
                customer.base,
                *(c.ref for c in links_repo.cards_of(connection, customer_id=customer.id)),
            ]
        # Read the keys before anything is deleted: the notice must list every one of them.
        keys = links_repo.hub_keys_of(connection, refs=refs)
        if customer is not None:
            links_repo.delete_customer(connection, customer_id=customer.id, base=customer.base)
            links_repo.add_attachment(
                connection,
                customer_id=customer.id,
                partner_id=partner.id,
                card_id=row.id,
                rule="withdrawal",
                policy_version=customer.policy_version,
                now=access.now,
                actor=access.actor,
            )
        hub = deployment.hub_domain(connection)
        links_repo.delete_hub_keys(connection, refs=refs)
        inbox_repo.mark_withdrawn(connection, refs=refs, now=access.now)
        if hub is not None:
            with staged_delivery(
                deployment,
                connection,
                recipient=hub,
                kind="withdrawal",
                name="withdrawal",
                header=["linking_key"],
                sender=domain,
                now=access.now,
            ) as delivery:
                for version, value in keys:
                    delivery.write([str(Pseudonym(hub.name, version, value))])
        deployment.record(
            connection,
            access,
            action="customer_withdraw",
            domains=[domain],
            subject=deployment.subject_reference(connection, row.base),
            counts=Counts(records_out=len(keys)),
        )
    return len(keys)
