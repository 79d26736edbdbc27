"""The deployment's pseudonym scheme, chosen once by ``tiers init --scheme``: ``hmac`` (the
default) or ``oprf`` (blind mode throughout).

Both have a base pseudonym ``B`` of each identifier (the customer's subject, never shown) and a
pseudonym ``P`` of it in each domain key version; everything else (cards, links, hub keys,
subject references, the subject index) is built from ``B`` and is the same in both.

- ``hmac``: ``B = HMAC(K_base, enc(x))`` and ``P = HMAC(K_d,v, B)`` cut to 160 bits
  (:mod:`tiers.pseudonyms`). ``P`` cannot be undone: the service finds the subject of a
  pseudonym in its index, so only of pseudonyms it issued itself.
- ``oprf``: with ``H`` the hash to ristretto255 of RFC 9497 (its verifiable mode's) and
  ``enc(x)`` the same encoding, ``B = k·H(x)`` and ``P = s_d,v·H(x)``, where ``s_d,v`` is the
  key of the domain version's oblivious function (:func:`oprf_key`, the very key of
  ``POST /v1/blind/evaluate``) and ``k`` the base key's. So a partner that blinds its
  identifiers unblinds exactly the pseudonyms the service would have issued from the clear
  values, and the service converts either way without the identifier: ``P = (s·k⁻¹)·B`` and
  ``B = (k·s⁻¹)·P``. Any pseudonym of a partner's gives its subject, whether the service
  issued it or the partner unblinded it, and a pseudonym of one domain becomes another's by
  ``s_e·s_d⁻¹``. A destroyed key version's scalar is gone with its material (crypto-shredding).

The keys of the function are derived from the wrapped, versioned, sealed key material the
deployment already holds (:func:`oprf_key`); nothing new is stored. Which scheme a deployment
runs is a row of the ``meta`` table, written by the first ``tiers init`` and never changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection

from errors import ConfigurationError, InvalidIdentifier, InvalidRequest, TiersError
from keys import DomainKey, Keyring, length_prefixed
from keys.oprf import (
    ELEMENT_BYTES,
    Mode,
    OprfKey,
    derive_key_pair,
    hash_to_group,
    multiplied,
    scalar_ratio,
)
from tiers.identifiers import NormalisationOptions, get_kind
from tiers.pseudonyms import parse_many_for_domain, pseudonym_values
from tiers.storage import subjects
from tiers.storage.domains import DomainRecord

if TYPE_CHECKING:
    from tiers.deployment import Deployment

__all__ = [
    "HMAC",
    "META_SCHEME",
    "OPRF",
    "ElementBase",
    "ElementKey",
    "Pseudonymiser",
    "check_scheme",
    "clear_bases",
    "oprf_key",
    "pseudonymiser",
    "subjects_named",
]

HMAC = "hmac"
OPRF = "oprf"
SCHEMES = (HMAC, OPRF)
META_SCHEME = "scheme"  # its row in the meta table (absent: a deployment made before schemes)

_LABEL = b"tiers blind mode v1: the seed of this domain key version's oblivious function"
BASE_OWNER = "tiers-base"  # the base key's name in its function's info


def check_scheme(name: str) -> str:
    """``name`` if it is a scheme; else :class:`ConfigurationError` (``unknown_scheme``)."""
    if name not in SCHEMES:
        raise ConfigurationError(
            f"the scheme must be one of {', '.join(SCHEMES)}", code="unknown_scheme"
        )
    return name


def oprf_key(owner: str, key: DomainKey) -> OprfKey:
    """The oblivious function's key of ``owner``'s key version ``key`` (derived, not stored):
    its seed is the HMAC of a fixed label under the version, its scalar RFC 9497's
    ``DeriveKeyPair`` of that seed with ``<owner>.v<version>`` as the key's info."""
    seed = key.mac(_LABEL)
    info = f"{owner}.v{key.version}".encode()
    return OprfKey(*derive_key_pair(seed, info, Mode.VOPRF))


@dataclass(frozen=True, slots=True, repr=False)
class ElementBase:
    """The base key's function under ``oprf``: ``B = k·H(enc(x))``."""

    secret: bytes

    @classmethod
    def of(cls, base_key: DomainKey) -> ElementBase:
        return cls(oprf_key(BASE_OWNER, base_key).secret)

    def bases(self, messages: Sequence[bytes]) -> list[bytes]:
        """``B`` of each encoded identifier ``enc(x)``, in order."""
        points = [hash_to_group(m, Mode.VOPRF) for m in messages]
        return multiplied(self.secret, points, checked=False)  # elements by construction

    def __repr__(self) -> str:
        return "<ElementBase (redacted)>"


@dataclass(frozen=True, slots=True, repr=False)
class ElementKey:
    """One domain key version under ``oprf``: from a base pseudonym to the domain's
    (``s·k⁻¹``) and back (``k·s⁻¹``)."""

    version: int
    forward: bytes
    backward: bytes

    @classmethod
    def of(cls, owner: str, key: DomainKey, base: ElementBase) -> ElementKey:
        secret = oprf_key(owner, key).secret
        forward, backward = scalar_ratio(secret, base.secret), scalar_ratio(base.secret, secret)
        return cls(key.version, forward, backward)

    def values(self, bases: Sequence[bytes]) -> list[bytes]:
        """The pseudonyms of base pseudonyms the service made (not checked again)."""
        return multiplied(self.forward, bases, checked=False)

    def bases(self, values: Sequence[bytes]) -> list[bytes]:
        """The subjects of pseudonyms from outside: each checked to be an element first."""
        return multiplied(self.backward, values)

    def __repr__(self) -> str:
        return f"<ElementKey v{self.version} (redacted)>"


class Pseudonymiser(Protocol):
    """A deployment's scheme within one connection: ``B`` of clear identifiers, ``P`` of
    ``B``, and the subject of a domain's pseudonyms."""

    name: str

    def bases(self, kind: str, normalised: Sequence[str]) -> list[bytes]: ...

    def values(self, record: DomainRecord, key: DomainKey, bases: Sequence[bytes]) -> list[bytes]:
        """The pseudonym values of ``bases`` in ``record``'s version ``key``, in order."""
        ...

    def subjects(
        self, record: DomainRecord, wanted: Iterable[tuple[int, bytes]]
    ) -> dict[tuple[int, bytes], bytes]:
        """The subject of each ``(version, value)`` of ``record`` that has one."""
        ...


def _encoded(kind: str, normalised: Sequence[str]) -> list[bytes]:
    head = kind.encode("utf-8")
    return [length_prefixed(head, value.encode("utf-8")) for value in normalised]


@dataclass(slots=True)
class _Hmac:
    deployment: Deployment
    connection: Connection
    name: str = HMAC

    def bases(self, kind: str, normalised: Sequence[str]) -> list[bytes]:
        base_key = self.deployment.base_keyring(self.connection).active
        return base_key.mac_many(_encoded(kind, normalised))

    def values(self, record: DomainRecord, key: DomainKey, bases: Sequence[bytes]) -> list[bytes]:
        return pseudonym_values(key, bases)

    def subjects(
        self, record: DomainRecord, wanted: Iterable[tuple[int, bytes]]
    ) -> dict[tuple[int, bytes], bytes]:
        return subjects.lookup_many(self.connection, domain_id=record.id, wanted=wanted)


@dataclass(slots=True)
class _Oprf:
    deployment: Deployment
    connection: Connection
    name: str = OPRF
    _base: ElementBase | None = None
    _keys: dict[tuple[str, int], ElementKey] = field(default_factory=dict)

    @property
    def base(self) -> ElementBase:
        if self._base is None:
            self._base = ElementBase.of(self.deployment.base_keyring(self.connection).active)
        return self._base

    def key(self, record: DomainRecord, key: DomainKey) -> ElementKey:
        found = self._keys.get((record.name, key.version))
        if found is None:
            found = ElementKey.of(record.name, key, self.base)
            self._keys[record.name, key.version] = found
        return found

    def bases(self, kind: str, normalised: Sequence[str]) -> list[bytes]:
        return self.base.bases(_encoded(kind, normalised))

    def values(self, record: DomainRecord, key: DomainKey, bases: Sequence[bytes]) -> list[bytes]:
        return self.key(record, key).values(bases)

    def subjects(
        self, record: DomainRecord, wanted: Iterable[tuple[int, bytes]]
    ) -> dict[tuple[int, bytes], bytes]:
        """Computed, not looked up: every element has a subject. A value that is not an
        element of the group (an ``hmac`` pseudonym's length, say) has none."""
        ring = self.deployment.domain_keyring(self.connection, record)
        found: dict[tuple[int, bytes], bytes] = {}
        for version, value in dict.fromkeys(wanted):
            if len(value) != ELEMENT_BYTES:
                continue
            try:
                (found[version, value],) = self.key(record, ring.key(version)).bases([value])
            except InvalidRequest:  # bad_element: not an element, or the identity
                continue
        return found


def pseudonymiser(deployment: Deployment, connection: Connection) -> Pseudonymiser:
    """The deployment's scheme, its keys read through ``connection`` as they are needed."""
    if deployment.scheme == OPRF:
        return _Oprf(deployment, connection)
    return _Hmac(deployment, connection)


def subjects_named(
    scheme: Pseudonymiser, record: DomainRecord, keyring: Keyring, texts: Sequence[str]
) -> list[bytes | TiersError | None]:
    """The subject of each pseudonym of ``record``'s in ``texts``, in order: in its place the
    error of a text that is not a usable pseudonym of the domain (``keyring`` its keys), or
    ``None`` for one with no subject (under ``hmac``, one the service never issued)."""
    parsed = parse_many_for_domain(texts, domain=record.name, keyring=keyring)
    found = scheme.subjects(record, [p for p in parsed if isinstance(p, tuple)])
    return [found.get(p) if isinstance(p, tuple) else p for p in parsed]


def clear_bases(
    scheme: Pseudonymiser,
    kind: str,
    options: Callable[[], NormalisationOptions],
    values: Sequence[str],
) -> list[bytes | TiersError]:
    """The base pseudonym of each clear identifier of ``kind`` in ``values``, in order, or in
    its place the error that refuses it. ``options`` gives the domain's normalisation and is
    asked only if there is a value (a blind-only domain refuses them for the whole call)."""
    if not values:
        return []
    normaliser = get_kind(kind).normaliser
    settings = options()
    normalised: list[str | TiersError] = []
    for value in values:
        try:
            normalised.append(normaliser(value, settings))
        except InvalidIdentifier as error:
            normalised.append(error.with_traceback(None))  # kept without this frame: no cycle
    bases = iter(scheme.bases(kind, [n for n in normalised if isinstance(n, str)]))
    return [next(bases) if isinstance(n, str) else n for n in normalised]
