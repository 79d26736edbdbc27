"""Exchanges: a partner's file to the hub in hub linking keys; customers withdrawing from the
alliance. (Campaigns, from the hub back to each customer's SG only: :mod:`tiers.campaigns`.)

What crosses always crosses in the recipient's domain: the hub receives hub keys (one customer
key for every card of a linked customer), a partner receives pseudonyms of its own domain for
its own attached customers. Deliveries land in inboxes (:mod:`tiers.inbox`) whole or not at all.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import IO

from sqlalchemy import Connection

from audit import Action, Counts
from errors import (
    InvalidFile,
    InvalidRequest,
    NotFound,
    PolicyViolation,
    TiersError,
)
from policy.exchanges import ExchangeSchema, load_exchanges, row_problems
from tiers import _parquet as formats
from tiers import _subject_index as subject_index
from tiers import schemes
from tiers._csvio import (
    FIELD_SIZE_LIMIT,
    checked_delimiter,
    csv_records,
    delimiter_hint,
    open_source,
    read_header,
)
from tiers._parquet import records as parquet_records
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.cards import CardEnrolment, card_refs, partner_card
from tiers.deployment import Deployment
from tiers.files import Reject
from tiers.identifiers import NormalisationOptions, get_kind
from tiers.inbox import PendingDelivery, staged_delivery
from tiers.pseudonyms import (
    Pseudonym,
    parse_many_for_domain,
)
from tiers.storage import bulk_load, subjects
from tiers.storage import inbox as inbox_repo
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord
from tiers.storage.links import CardRow, CustomerRow

__all__ = [
    "ExchangeReport",
    "send_exchange",
    "withdraw_customer",
]


# Rows keyed together: a few statements per batch instead of eight per row.
EXCHANGE_BATCH = 2000
_LISTED_REJECTS = 10  # rejects listed in the report; all of them go to the sender's inbox


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
        self.deployment = deployment
        self.scheme = schemes.pseudonymiser(deployment, connection)
        self._options: NormalisationOptions | None = None
        # The customers the exchange named, for the subject index (tiers._subject_index).
        self.touched: list[bytes] = []

    def keys(self, values: Sequence[str], keyed: Sequence[bool]) -> list[str | TiersError | None]:
        """The hub key of each identifier, in order, or in its place the error that rejects
        its row. A value whose row is not ``keyed`` (it is rejected for its other columns) is
        only checked: nothing is registered or enrolled for it, and ``None`` stands in its
        place when it is valid. Done for many rows at once: a few statements for the whole
        batch, not eight a row; the answers are those of taking the rows one by one (tested)."""
        bases = self._bases(values, keyed)
        self.touched += [b for b in bases if isinstance(b, bytes)]
        if self.kind.name != "card":
            keyed_bases = [b for b in bases if isinstance(b, bytes)]
            hub_values = iter(self.scheme.values(self.hub, self.hub_key, keyed_bases))
            return [
                str(Pseudonym(self.hub.name, self.hub_key.version, next(hub_values)))
                if isinstance(b, bytes)
                else b
                for b in bases
            ]
        known = list(dict.fromkeys(b for b in bases if isinstance(b, bytes)))
        refs = dict(zip(known, card_refs(self.base_key, self.partner.name, known), strict=True))
        found = links_repo.card_customers(self.connection, refs=list(refs.values()))
        # Only the cards not enrolled yet are enrolled: one that is was keyed then, unless
        # withdrawn (the invariant tiers.tokenisation.Registrar.flush relies on too). New
        # cards are linked to no customer: each is its own target.
        new = [base for base in known if refs[base] not in found]
        self.enrolment.enrol_refs([(refs[base], base) for base in new], self.now)
        withdrawn = inbox_repo.withdrawn_refs(self.connection, refs=list(refs.values()))
        owners = links_repo.customers_by_ids(
            self.connection, ids=[c for c in found.values() if c is not None]
        )
        targets = {
            ref: ref if customer is None else owners[customer].base
            for ref, customer in found.items()
        }
        targets.update((refs[base], refs[base]) for base in new)
        for ref in withdrawn:
            targets.pop(ref, None)
        values_ = links_repo.hub_values(
            self.connection, refs=list(targets.values()), version=self.hub_key.version
        )
        answers: list[str | TiersError | None] = []
        for base in bases:
            if base is None or isinstance(base, TiersError):
                answers.append(base)
                continue
            target = targets.get(refs[base])
            value = None if target is None else values_.get(target)
            if target is None:
                answers.append(
                    PolicyViolation("the customer withdrew from the alliance", code="withdrawn")
                )
            elif value is None:
                answers.append(NotFound("no hub key", code="no_hub_key"))
            else:
                answers.append(str(Pseudonym(self.hub.name, self.hub_key.version, value)))
        return answers

    def _bases(
        self, values: Sequence[str], keyed: Sequence[bool]
    ) -> list[bytes | TiersError | None]:
        """The subject of each value: a clear identifier is registered (in the partner's
        domain, as its pseudonym would be), a pseudonym of the partner's is looked up. A value
        not ``keyed`` is checked only: None for a valid one, and nothing registered. A value
        that is refused (a malformed identifier or pseudonym, one of a key version that never
        existed or was destroyed) has its error in its place: the row's problem, not the
        file's."""
        prefix = self.partner.name + ".v"
        named = [value.startswith(prefix) for value in values]
        pseudonyms = iter(
            parse_many_for_domain(
                [v for v, n in zip(values, named, strict=True) if n],
                domain=self.partner.name,
                keyring=self.partner_ring,
            )
        )
        clear = iter(
            schemes.clear_bases(
                self.scheme,
                self.kind.name,
                self._normalisation,
                [v for v, n in zip(values, named, strict=True) if not n],
            )
        )
        parsed = [next(pseudonyms) if n else next(clear) for n in named]
        # Looked up before this batch registers anything; then, row by row, what a row
        # registers is known to the rows after it (and only to them), as if one by one.
        found = self.scheme.subjects(self.partner, [p for p in parsed if isinstance(p, tuple)])
        new = list(
            dict.fromkeys(
                p for p, keep in zip(parsed, keyed, strict=True) if keep and isinstance(p, bytes)
            )
        )
        registered = dict(
            zip(new, self.scheme.values(self.partner, self.partner_key, new), strict=True)
        )
        bases: list[bytes | TiersError | None] = []
        for item, keep in zip(parsed, keyed, strict=True):
            if isinstance(item, bytes):
                if keep:
                    found.setdefault((self.partner_key.version, registered[item]), item)
                bases.append(item if keep else None)
            elif isinstance(item, tuple):
                subject = found.get(item)
                if subject is None:
                    bases.append(NotFound("unknown pseudonym", code="unknown_pseudonym"))
                else:
                    bases.append(subject if keep else None)
            else:
                bases.append(item)
        subjects.register(
            self.connection,
            domain_id=self.partner.id,
            version=self.partner_key.version,
            pairs=list(registered.items()),
            now=self.now,
        )
        return bases

    def _normalisation(self) -> NormalisationOptions:
        """The partner's normalisation, asked at its first clear identifier: a blind-only
        partner's exchange refuses them whole (``blind_only``), and takes its pseudonyms."""
        if self._options is None:
            self._options = self.deployment.normalisation(self.partner)
        return self._options


@dataclass(slots=True)
class _SenderRejects:
    """The sender's rejects (``line,column,code``), written as they come to a delivery opened
    at the first one (never held in memory); the first few are also listed in the report."""

    report: ExchangeReport
    open: Callable[[], PendingDelivery]
    _delivery: PendingDelivery | None = None

    def add(self, line: int, problems: list[tuple[str, str]]) -> None:
        self.report.rows_rejected += 1
        if self._delivery is None:
            self._delivery = self.open()
        for column, code in problems:
            self._delivery.write([str(line), column, code])
            if len(self.report.first_rejects) < _LISTED_REJECTS:
                self.report.first_rejects.append(Reject(line, column, code))


def _check_header(header: list[str], schema: ExchangeSchema, exchange_type: str) -> None:
    """Refuse the whole file for its header: no identifier column, an undeclared column, a
    column named twice (raises :class:`InvalidFile`)."""
    if schema.identifier_column not in header:
        raise InvalidFile(
            f"the file has no {schema.identifier_column!r} column" + delimiter_hint(header),
            code="no_identifier_column",
        )
    for n, name in enumerate(header, start=1):
        if name != schema.identifier_column and name not in schema.columns:
            raise InvalidFile(
                f"column number {n} of the header is not declared for this exchange type",
                code="undeclared_column",
            )
    if len(set(header)) != len(header):
        raise InvalidFile("the header names a column twice", code="duplicate_column")


def _schema_of(deployment: Deployment, exchange_type: str) -> ExchangeSchema:
    schemas = exchange_schemas(deployment)
    schema = schemas.get(exchange_type)
    if schema is None:
        raise NotFound(
            f"unknown exchange type (type); known: {', '.join(schemas)}",
            code="unknown_exchange",
        )
    return schema


@dataclass(frozen=True, slots=True)
class _Layout:
    """A file's schema, and where its identifier and payload columns are (its header
    checked)."""

    schema: ExchangeSchema
    header: list[str]
    identifier: int
    payload: list[str]

    @classmethod
    def of(cls, header: list[str], schema: ExchangeSchema) -> _Layout:
        payload = [name for name in header if name != schema.identifier_column]
        return cls(schema, header, header.index(schema.identifier_column), payload)


def _send_batch(
    chunk: list[tuple[int, list[str]]],
    layout: _Layout,
    keys: _HubKeys,
    delivery: PendingDelivery,
    rejects: _SenderRejects,
) -> None:
    """Key one batch of rows: each whole row whose payload fits is written to the hub's
    delivery under its hub key; every other row is rejected, with each of its problems. A row
    rejected for its payload is not keyed: its card is checked, not enrolled."""
    schema, header, identifier = layout.schema, layout.header, layout.identifier
    width = len(header)
    checked = [(line, row, row_problems(row, header, identifier, schema)) for line, row in chunk]
    whole = [(row, problems) for _, row, problems in checked if len(row) == width]
    found = iter(
        keys.keys(
            [row[identifier] for row, _ in whole],
            keyed=[not problems for _, problems in whole],
        )
    )
    report = rejects.report
    for line, row, problems in checked:
        report.rows_in += 1
        hub_key = next(found) if len(row) == width else None
        if isinstance(hub_key, TiersError):
            problems.insert(0, (schema.identifier_column, hub_key.code))
        if not problems and isinstance(hub_key, str):
            delivery.write([hub_key, *(row[header.index(n)] for n in layout.payload)])
            report.rows_out += 1
            continue
        rejects.add(line, problems)


def _rows_of(
    stack: ExitStack,
    source: Path | IO[bytes],
    delimiter: str | None,
    encoding: str,
    file_format: str | None,
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The file's header and records, CSV or Parquet."""
    named = source if isinstance(source, Path) else None
    if formats.file_format(named, file_format) == "parquet":
        if named is None:
            raise InvalidRequest("a Parquet file is read from a file", code="unknown_format")
        return parquet_records(named)
    raw, text, _, found = open_source(source, encoding=encoding, delimiter=delimiter)
    stack.callback(raw.close)
    reader = csv.reader(text, delimiter=found)
    return read_header(reader), csv_records(reader)


@dataclass(slots=True)
class _Sending:
    """One exchange being sent, in its transaction: where its rows go and what it records."""

    deployment: Deployment
    connection: Connection
    access: Access
    exchange_type: str
    partner: DomainRecord
    keys: _HubKeys
    report: ExchangeReport

    @classmethod
    def begun(
        cls,
        stack: ExitStack,
        deployment: Deployment,
        access: Access,
        *,
        domain: str,
        schema: ExchangeSchema,
        exchange_type: str,
        report: ExchangeReport,
    ) -> _Sending:
        """The exchange's transaction, a bulk load, entered on ``stack``."""
        connection = stack.enter_context(deployment.transaction())
        stack.enter_context(bulk_load(connection))
        partner = deployment.domain(connection, domain)
        keys = _HubKeys(deployment, connection, partner, schema, access.now)
        return cls(deployment, connection, access, exchange_type, partner, keys, report)

    def _staged(
        self, recipient: DomainRecord, kind: str, columns: list[str], sender: str
    ) -> AbstractContextManager[PendingDelivery]:
        return staged_delivery(
            self.deployment,
            self.connection,
            recipient=recipient,
            kind=kind,
            name=self.exchange_type,
            header=columns,
            sender=sender,
            now=self.access.now,
        )

    def deliveries(
        self, stack: ExitStack, payload: list[str]
    ) -> tuple[PendingDelivery, _SenderRejects, ExitStack]:
        """The hub's delivery and the sender's rejects, with the stack that makes both appear
        when it is closed (once the whole file was read). The rejects delivery is opened at
        the first reject and written as the file is read, never held in memory."""
        deliveries = stack.enter_context(ExitStack())
        columns = ["linking_key", *payload]
        delivery = deliveries.enter_context(
            self._staged(self.keys.hub, "exchange", columns, self.partner.name)
        )
        rejects = _SenderRejects(
            self.report,
            lambda: deliveries.enter_context(
                self._staged(self.partner, "rejects", ["line", "column", "code"], "tiers")
            ),
        )
        return delivery, rejects, deliveries

    def record(self) -> None:
        """The exchange's entry, indexed under every customer it named, and its rows charged
        to the client's budget."""
        report = self.report
        entry = self.deployment.record(
            self.connection,
            self.access,
            action=Action.EXCHANGE_SEND,
            domains=[self.partner.name, self.keys.hub.name],
            counts=Counts(report.rows_in, report.rows_out, report.rows_rejected),
            detail={"exchange": self.exchange_type, "identifiers": report.rows_in},
        )
        subject_index.index(self.deployment, self.connection, entry, self.keys.touched)
        self.deployment.budget.charge(self.access, report.rows_in)


@audited(Action.EXCHANGE_SEND)
def send_exchange(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    exchange_type: str,
    source: Path | IO[bytes],
    delimiter: str | None = None,
    encoding: str = "utf-8",
    file_format: str | None = None,
    rows_per_batch: int = EXCHANGE_BATCH,
) -> ExchangeReport:
    """Send a partner file of type ``exchange_type`` to the hub, in hub linking keys.

    The header must name the identifier column and only declared columns (else the whole file
    is refused, ``undeclared_column``); each row whose identifier does not normalise or whose
    value does not fit its type is rejected (``line,column,code``). The hub's delivery and the
    sender's rejects delivery appear together, when the whole file was read. The rows are
    keyed ``rows_per_batch`` at a time (:func:`_send_batch`); the delivery is the same whatever
    the batch. A CSV file is read as :func:`tiers._csvio.prepared` says (``delimiter`` found
    from the header unless given, ``encoding`` utf-8, cp1252 or latin-1); a Parquet file
    (``file_format``, or its extension) as :mod:`tiers._parquet` says.
    """
    require(access, Action.EXCHANGE_SEND, domain)
    delimiter = checked_delimiter(delimiter)
    deployment.budget.admit(access)
    schema = _schema_of(deployment, exchange_type)
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    report = ExchangeReport()
    with ExitStack() as stack:
        header, records = _rows_of(stack, source, delimiter, encoding, file_format)
        _check_header(header, schema, exchange_type)
        layout = _Layout.of(header, schema)
        sending = _Sending.begun(
            stack, deployment, access, domain=domain, schema=schema,
            exchange_type=exchange_type, report=report,
        )  # fmt: skip
        delivery, rejects, deliveries = sending.deliveries(stack, layout.payload)
        while chunk := list(itertools.islice(records, rows_per_batch)):
            _send_batch(chunk, layout, sending.keys, delivery, rejects)
        if report.rows_in == 0:
            raise InvalidFile("the file has a header but no data rows", code="no_rows")
        report.delivery = delivery.id
        deliveries.close()
        sending.record()
    return report


def _withdrawn(
    connection: Connection, row: CardRow, domain: str
) -> tuple[CustomerRow | None, list[bytes], list[bytes]]:
    """The customer of the card ``row`` (if linked), the references of their hub keys and the
    base pseudonyms of their cards (for the subject index). Only their SG may withdraw them."""
    if row.customer_id is None:
        return None, [row.ref], [row.base]
    customer = links_repo.customer(connection, customer_id=row.customer_id)
    assert customer is not None
    if customer.attached_to != domain:
        raise PolicyViolation("only the customer's SG may withdraw them", code="withdraw.not_sg")
    cards = links_repo.cards_of(connection, customer_id=customer.id)
    return customer, [customer.base, *(c.ref for c in cards)], [c.base for c in cards]


def _notify_withdrawal(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    domain: str,
    keys: list[tuple[int, bytes]],
) -> None:
    """The withdrawal notice: the hub keys the hub must erase (none to announce when the
    customer was withdrawn already)."""
    hub = deployment.hub_domain(connection)
    if hub is None or not keys:
        return
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


@audited(Action.CUSTOMER_WITHDRAW)
def withdraw_customer(deployment: Deployment, *, access: Access, domain: str, card: str) -> int:
    """A customer leaves the alliance, through their SG: links removed, hub keys retired for
    good, and a withdrawal notice (the hub keys to erase) delivered to the hub. Returns the
    number of hub keys withdrawn; withdrawing again withdraws none and delivers nothing."""
    require(access, Action.CUSTOMER_WITHDRAW, domain)
    deployment.budget.admit(access, 1)
    with deployment.transaction() as connection:
        links_repo.lock(connection)
        partner = deployment.domain(connection, domain)
        row = partner_card(deployment, connection, partner, card)
        customer, refs, bases = _withdrawn(connection, row, domain)
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
        links_repo.delete_hub_keys(connection, refs=refs)
        inbox_repo.mark_withdrawn(connection, refs=refs, now=access.now)
        _notify_withdrawal(deployment, connection, access, domain, keys)
        entry = deployment.record(
            connection,
            access,
            action=Action.CUSTOMER_WITHDRAW,
            domains=[domain],
            subject=deployment.subject_reference(connection, row.base),
            counts=Counts(records_out=len(keys)),
        )
        # Found by any of the customer's cards, though they are unlinked from now on.
        subject_index.index(deployment, connection, entry, bases, named_too=True)
    return len(keys)
