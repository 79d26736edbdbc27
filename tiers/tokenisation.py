"""Turning identifiers into domain pseudonyms: one value, a batch, and registering subjects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from audit import Action, Counts
from errors import InvalidIdentifier, InvalidRequest, TiersError
from keys import DomainKey, length_prefixed
from tiers import _subject_index as subject_index
from tiers import schemes
from tiers.auditing import Access, Pending, audited
from tiers.authorisation import require
from tiers.cards import CardEnrolment
from tiers.deployment import Deployment
from tiers.identifiers import IdentifierKind, NormalisationOptions, get_kind
from tiers.pseudonyms import PSEUDONYM_BYTES, Pseudonym, b32_text, b32_texts, pseudonym_values
from tiers.storage import SortedInserts, sorted_inserts, subjects
from tiers.storage.domains import DomainRecord

__all__ = [
    "HELD_FROM_VALUES",
    "Registrar",
    "Tokeniser",
    "ValuesCall",
    "may_go_together",
    "pseudonymise_together",
    "pseudonymise_values",
    "registrar_for",
]

REGISTER_BATCH = 10_000
# A batch of at least this many values registers through held, sorted inserts
# (tiers.storage._held_inserts); below it the temporary tables cost more than the sort saves
# (the measurements: bench/HISTORY.md, "Measurements behind constants").
HELD_FROM_VALUES = 10_000


# Registering skips what the index holds (Registrar.skip_known) while a batch finds at least
# this share of itself there. Looking a known value up costs a fraction of registering it again
# (its card's reference, hub key and withdrawal check, four inserts ignored), but is a cost of
# its own for a new one (bench/HISTORY.md, "Measurements behind constants").
KEEP_LOOKING_UP = 0.25

_KIND_PREFIX: dict[str, bytes] = {}


def _kind_prefix(name: str) -> bytes:
    _KIND_PREFIX[name] = prefix = length_prefixed(name.encode("utf-8"))
    return prefix


@dataclass(slots=True, repr=False)
class Tokeniser:
    """Everything needed to pseudonymise into one domain, prepared once per request or file."""

    domain: DomainRecord
    base_key: DomainKey
    domain_key: DomainKey
    options: NormalisationOptions
    _prefix: str = field(init=False)

    def __post_init__(self) -> None:
        self._prefix = f"{self.domain.name}.v{self.domain_key.version}."

    @classmethod
    def open(cls, deployment: Deployment, connection: Connection, domain: str) -> Tokeniser:
        """Raises :class:`~errors.NotFound` for an unknown domain and
        :class:`InvalidRequest` for an audit domain (its pseudonyms only ever go to the log)."""
        record = deployment.domain(connection, domain)
        if record.role == "audit":
            raise InvalidRequest(
                "the domain is an audit domain: it does not issue pseudonyms",
                code="wrong_role",
            )
        base_key = deployment.base_keyring(connection).active
        domain_key = deployment.domain_keyring(connection, record).active
        options = deployment.normalisation(record)
        if deployment.scheme == schemes.OPRF:
            base = schemes.ElementBase.of(base_key)
            element_key = schemes.ElementKey.of(record.name, domain_key, base)
            return ElementTokeniser(record, base_key, domain_key, options, base, element_key)
        return cls(record, base_key, domain_key, options)

    def tokenise(self, kind: IdentifierKind, value: str) -> tuple[bytes, bytes, str]:
        """``(B, P value, P text)`` for a clear ``value``; raises :class:`InvalidIdentifier`.

        Same result as :func:`tiers.pseudonyms.base_pseudonym` then
        :func:`~tiers.pseudonyms.domain_pseudonym`, without building intermediate objects.
        """
        normalised = kind.normaliser(value, self.options).encode("utf-8")
        # length_prefixed(kind, normalised), with the kind's part computed once per kind.
        prefix = _KIND_PREFIX.get(kind.name) or _kind_prefix(kind.name)
        base = self.base_key.mac(prefix + len(normalised).to_bytes(4, "big") + normalised)
        mac = self.domain_key.mac(base)[:PSEUDONYM_BYTES]
        return base, mac, self._prefix + b32_text(mac)

    def tokenise_many(
        self, kind: IdentifierKind, values: Sequence[str]
    ) -> list[tuple[bytes, bytes, str] | InvalidIdentifier]:
        """:meth:`tokenise` of each value, in order, with the error of an invalid value in its
        place; the texts are encoded together (:func:`~tiers.pseudonyms.b32_texts`)."""
        outcomes, messages = self._encoded(kind, values)
        bases = self.base_key.mac_many(messages)
        macs = pseudonym_values(self.domain_key, bases)
        tokens = zip(bases, macs, [self._prefix + text for text in b32_texts(macs)], strict=True)
        if len(bases) == len(outcomes):  # no invalid value
            return list(tokens)
        return [next(tokens) if outcome is None else outcome for outcome in outcomes]

    def _encoded(
        self, kind: IdentifierKind, values: Sequence[str]
    ) -> tuple[list[InvalidIdentifier | None], list[bytes]]:
        """Each value's error in its place (``None`` for a valid one), and the encodings
        ``len‖kind‖len‖normalised`` of the valid ones, in order."""
        normaliser, options = kind.normaliser, self.options
        prefix = _KIND_PREFIX.get(kind.name) or _kind_prefix(kind.name)
        outcomes: list[InvalidIdentifier | None] = []
        messages: list[bytes] = []
        for value in values:
            try:
                normalised = normaliser(value, options).encode("utf-8")
            except InvalidIdentifier as error:
                outcomes.append(error.with_traceback(None))  # kept without this frame: no cycle
                continue
            outcomes.append(None)
            messages.append(prefix + len(normalised).to_bytes(4, "big") + normalised)
        return outcomes, messages

    def __repr__(self) -> str:
        return f"<Tokeniser {self.domain.name} v{self.domain_key.version} (keys redacted)>"


@dataclass(slots=True, repr=False)
class ElementTokeniser(Tokeniser):
    """The ``oprf`` scheme's tokeniser (:mod:`tiers.schemes`): ``B = k·H(enc(x))`` and
    ``P = (s·k⁻¹)·B``, elements of 32 bytes, texts of 52 letters."""

    element_base: schemes.ElementBase
    element_key: schemes.ElementKey

    def tokenise(self, kind: IdentifierKind, value: str) -> tuple[bytes, bytes, str]:
        (token,) = self.tokenise_many(kind, [value])
        if isinstance(token, InvalidIdentifier):
            raise token
        return token

    def tokenise_many(
        self, kind: IdentifierKind, values: Sequence[str]
    ) -> list[tuple[bytes, bytes, str] | InvalidIdentifier]:
        outcomes, messages = self._encoded(kind, values)
        bases = self.element_base.bases(messages)
        elements = self.element_key.values(bases)
        name, version = self.domain.name, self.domain_key.version
        tokens = iter(
            (base, value, str(Pseudonym(name, version, value)))
            for base, value in zip(bases, elements, strict=True)
        )
        return [next(tokens) if outcome is None else outcome for outcome in outcomes]


@dataclass(slots=True)
class Registrar:
    """Collects ``(B, P)`` pairs and writes them in batches on one connection."""

    connection: Connection
    domain_id: int
    version: int
    now: datetime
    batch: int = REGISTER_BATCH
    # Called with the base pseudonyms of card numbers, to enrol them (partner domains).
    enroller: Callable[[list[bytes]], None] | None = None
    # Where the rows are held to be inserted in key order at the end (see finish).
    held: SortedInserts | None = None
    # Look each batch up in the index first and write only what it does not hold (see flush),
    # until a batch finds less than KEEP_LOOKING_UP of itself known.
    skip_known: bool = False
    _pending: dict[bytes, bytes] = field(default_factory=dict)
    _cards: list[bytes] = field(default_factory=list)
    registered: int = 0

    def add(self, base: bytes, value: bytes, kind: str = "") -> None:
        self._pending[base] = value
        if kind == "card" and self.enroller is not None:
            self._cards.append(base)
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Register the pending pairs and enrol the pending cards.

        With ``skip_known``, the pairs the index already holds (same value, same subject) are
        left out, and so are their cards: registering them again would change nothing, and a
        card whose subject is indexed in a partner's domain is enrolled already and, unless
        withdrawn, keyed in every live hub version. Every path that indexes a partner's card
        enrols it in the same transaction (this one, :func:`tiers.cards.enrol_cards`, an
        exchange's keys); a hub created later keys the cards enrolled before it
        (:func:`tiers.links.backfill_hub_keys`), and a new hub version keys every keyed card
        (:func:`tiers.rekey.rekey_hub`). The test suite checks that invariant after each test.
        """
        if not self._pending:
            return
        pairs = list(self._pending.items())
        cards = self._cards
        if self.skip_known:
            known = subjects.known(
                self.connection, domain_id=self.domain_id, version=self.version, pairs=pairs
            )
            if known:
                pairs = [pair for pair in pairs if pair[0] not in known]
                cards = [base for base in cards if base not in known]
            if len(known) < KEEP_LOOKING_UP * len(self._pending):
                self.skip_known = False  # a file of new customers: looking up costs, saves little
        subjects.register(
            self.connection,
            domain_id=self.domain_id,
            version=self.version,
            pairs=pairs,
            now=self.now,
        )
        self.registered += len(self._pending)
        self._pending.clear()
        self._cards = []
        if cards and self.enroller is not None:
            self.enroller(cards)

    def finish(self) -> None:
        """Write what is pending, and what is held, into the tables."""
        self.flush()
        if self.held is not None:
            self.held.flush()


def _card_enroller(
    deployment: Deployment, connection: Connection, tokeniser: Tokeniser, now: datetime
) -> Callable[[list[bytes]], None] | None:
    """Registering a partner's card numbers enrols the cards (see :mod:`tiers.cards`)."""
    if tokeniser.domain.role != "partner":
        return None
    enrolment = CardEnrolment(deployment, connection, tokeniser.domain, tokeniser.base_key)
    return lambda bases: enrolment.enrol(bases, now)


def registrar_for(
    deployment: Deployment,
    connection: Connection,
    tokeniser: Tokeniser,
    now: datetime,
    *,
    held: SortedInserts | None,
    skip_known: bool,
) -> Registrar:
    """Who registers the subjects of ``tokeniser``'s domain (and enrols a partner's cards) in
    ``connection``; ``held`` and ``skip_known`` as :class:`Registrar` takes them."""
    return Registrar(
        connection,
        tokeniser.domain.id,
        tokeniser.domain_key.version,
        now,
        enroller=_card_enroller(deployment, connection, tokeniser, now),
        held=held,
        skip_known=skip_known,
    )


@dataclass(frozen=True, slots=True)
class ValuesCall:
    """One request to pseudonymise ``values`` (see :func:`pseudonymise_values`)."""

    access: Access
    domain: str
    kind: str
    values: Sequence[str]
    register: bool = True


@audited(Action.PSEUDONYMISE)
def pseudonymise_values(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    kind: str,
    values: Sequence[str],
    register: bool = True,
) -> list[str | InvalidIdentifier]:
    """Pseudonyms of ``values`` in order; an invalid value gives its error in its place.

    Raises (for the whole request) :class:`~errors.NotFound` for an unknown domain and
    :class:`InvalidIdentifier` with code ``unknown_kind`` for an unknown kind. A request about
    a single customer carries that customer's subject reference into the access log.
    """
    require(access, Action.PSEUDONYMISE, domain)
    identifier_kind = get_kind(kind)
    deployment.budget.admit(access, len(values))
    request = ValuesCall(access, domain, kind, values, register)
    with deployment.transaction() as connection, ExitStack() as stack:
        held = (
            stack.enter_context(sorted_inserts(connection))
            if register and len(values) >= HELD_FROM_VALUES
            else None
        )
        (results,) = _pseudonymise(deployment, connection, [(request, identifier_kind)], held)
    return results


def pseudonymise_together(
    deployment: Deployment, requests: Sequence[ValuesCall]
) -> list[list[str | InvalidIdentifier]]:
    """:func:`pseudonymise_values` of several requests in one transaction (a group commit of
    short API calls, see :mod:`api.calls`): each gets the results and the access-log entry it
    would have got alone, in order; their registrations and entries are written together.

    Rows registered by the group take the time of its latest request. When any request is
    refused, or anything fails, the whole group is rolled back and the error raised, with
    nothing recorded: the caller then makes each request alone, which records its own outcome.
    """
    kinds = [_checked(request) for request in requests]
    for request in requests:
        deployment.budget.admit(request.access, len(request.values))
    with deployment.transaction() as connection:
        return _pseudonymise(deployment, connection, list(zip(requests, kinds, strict=True)))


def may_go_together(request: ValuesCall) -> bool:
    """Whether ``request`` passes the checks :func:`pseudonymise_together` makes before its
    transaction: one that does not is better made alone (which records its refusal) than in a
    group it would take down with it."""
    try:
        _checked(request)
    except TiersError:
        return False
    return True


def _checked(request: ValuesCall) -> IdentifierKind:
    """The caller's right to the request's domain, and its kind (raised as refused)."""
    require(request.access, Action.PSEUDONYMISE, request.domain)
    return get_kind(request.kind)


def _pseudonymise(
    deployment: Deployment,
    connection: Connection,
    requests: Sequence[tuple[ValuesCall, IdentifierKind]],
    held: SortedInserts | None = None,
) -> list[list[str | InvalidIdentifier]]:
    """Tokenise and register each request's values, and record one entry per request."""
    now = max(request.access.now for request, _ in requests)
    opened: dict[str, tuple[Tokeniser, Registrar]] = {}
    answers: list[list[str | InvalidIdentifier]] = []
    entries: list[Pending] = []
    touched: list[list[bytes]] = []
    for request, identifier_kind in requests:
        if request.domain not in opened:
            tokeniser = Tokeniser.open(deployment, connection, request.domain)
            registrar = registrar_for(
                deployment, connection, tokeniser, now, held=held, skip_known=True
            )
            opened[request.domain] = (tokeniser, registrar)
        tokeniser, registrar = opened[request.domain]
        results: list[str | InvalidIdentifier] = []
        bases: dict[bytes, None] = {}  # distinct, in order
        rejected = 0
        for outcome in tokeniser.tokenise_many(identifier_kind, request.values):
            if isinstance(outcome, InvalidIdentifier):
                results.append(outcome)
                rejected += 1
                continue
            base, mac, text = outcome
            results.append(text)
            bases[base] = None
            if request.register:
                registrar.add(base, mac, request.kind)
        entries.append(
            Pending(
                request.access,
                Action.PSEUDONYMISE,
                domains=[request.domain],
                counts=Counts(len(results), len(results) - rejected, rejected),
                subject=deployment.subject_reference(connection, next(iter(bases)))
                if len(request.values) == 1 and bases
                else None,
                detail={"kind": request.kind, "registered": len(bases) if request.register else 0},
            )
        )
        answers.append(results)
        touched.append(list(bases))
    for _, registrar in opened.values():
        registrar.finish()
    for entry, bases_of in zip(deployment.record_many(connection, entries), touched, strict=True):
        subject_index.index(deployment, connection, entry, bases_of)
    return answers
