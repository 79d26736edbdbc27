"""Blind mode's service half: the oblivious function of a domain (RFC 9497, ristretto255-SHA512,
verifiable mode; :mod:`keys.oprf`) evaluated on elements a partner blinded, so that the service
never sees the identifiers behind them.

Each version of a domain's key has its own key of the function, derived from it and never
stored: its seed is the HMAC of a fixed label under the domain key version, its scalar the RFC's
``DeriveKeyPair`` of that seed (with the domain's name and version as the key's info). So it is
versioned, wrapped under the master key and destroyed with the domain key it comes from, and
nothing new is kept. Its public element is published (:func:`blind_keys`): the partner checks
each batch's proof against it.

A call evaluates up to :data:`MAX_ELEMENTS` elements, refused whole if one is not an element of
the group (``bad_element``), and is one access-log entry with the number of elements; each
element is one identifier of the client's budget, as a clear value would be (a partner can still
query the function for guessed identifiers).

A partner's *blind pseudonym* is the unblinded element ``s_v·H(x)`` in text,
``<domain>.v<version>.<base32 of 32 bytes>`` (:func:`blind_pseudonym_text`, as the client writes
it). After a key rotation :func:`translate_blinded` re-keys the partner's blind pseudonyms of an
earlier version to the active one, ``s_active·s_v⁻¹·P``, without the identifier behind them,
with a proof for each source version that the partner checks against the two published keys:
two multiplications an element. A destroyed version's pseudonyms can no longer be translated
(crypto-shredding).

In a deployment of the ``oprf`` scheme (:mod:`tiers.schemes`) these blind pseudonyms are the
domain's pseudonyms themselves: the service issues the same from clear values, and takes them
back for cards, links, exchanges, withdrawals and subject look-ups. Under ``hmac`` they are the
partner's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from audit import Action, Counts
from errors import InvalidPseudonym, InvalidRequest
from keys.keyring import DomainKey, Keyring
from keys.oprf import ELEMENT_BYTES, element, rekeyed_with_proof
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.identifiers import NormalisationOptions
from tiers.pseudonyms import Pseudonym, parse_for_domain
from tiers.schemes import oprf_key

__all__ = [
    "BlindEvaluation",
    "BlindKey",
    "BlindKeys",
    "BlindTranslation",
    "blind_keys",
    "blind_pseudonym_text",
    "evaluate_blinded",
    "translate_blinded",
]

# Elements evaluated in one call (one proof covers them all).
MAX_ELEMENTS = 10_000


@dataclass(frozen=True, slots=True)
class BlindEvaluation:
    """The evaluated elements of a call, in order, and the one proof of them all."""

    domain: str
    version: int
    evaluated: list[bytes]
    proof: bytes


@dataclass(frozen=True, slots=True)
class BlindKey:
    """The public element of one version of a domain's oblivious function."""

    domain: str
    version: int
    state: str
    public: bytes


@dataclass(frozen=True, slots=True)
class BlindKeys:
    """What a partner needs to blind for ``domain``: how the service normalises its
    identifiers (the partner must give the same canonical form), the public element of each
    version of its function that is not destroyed, the active one first, and the deployment's
    scheme (under ``oprf`` the blind pseudonyms are the domain's own)."""

    domain: str
    normalisation: NormalisationOptions
    keys: list[BlindKey]
    scheme: str


@dataclass(frozen=True, slots=True)
class BlindTranslation:
    """Blind pseudonyms re-keyed to ``domain``'s active ``version``, in the order sent."""

    domain: str
    version: int
    pseudonyms: list[str]
    # One proof per source version: the re-keyed elements of that version are its elements
    # times the scalar that takes its public element to the active one's (keys.oprf).
    proofs: dict[int, bytes]


@audited(Action.BLIND_EVALUATE)
def evaluate_blinded(
    deployment: Deployment, *, access: Access, domain: str, elements: Sequence[bytes]
) -> BlindEvaluation:
    """Evaluate ``elements`` (blinded by the partner) with ``domain``'s active key, and prove
    it. Raises :class:`InvalidRequest`: ``no_elements``, ``too_many_values`` (more than
    :data:`MAX_ELEMENTS`), ``bad_element``, ``wrong_role`` (an audit domain)."""
    require(access, Action.BLIND_EVALUATE, domain)
    _check_size(elements, "element")
    deployment.budget.admit(access)
    with deployment.reading() as connection:
        record = deployment.domain(connection, domain)
        if record.role == "audit":
            raise InvalidRequest(
                "the domain is an audit domain: it does not issue pseudonyms", code="wrong_role"
            )
        key = deployment.domain_keyring(connection, record).active
    evaluated, proof = oprf_key(domain, key).evaluate_with_proof(elements)
    _logged(
        deployment, access, Action.BLIND_EVALUATE, domain=domain, count=len(elements),
        version=key.version,
    )  # fmt: skip
    return BlindEvaluation(domain, key.version, evaluated, proof)


@audited(Action.BLIND_KEYS)
def blind_keys(deployment: Deployment, *, access: Access, domain: str) -> BlindKeys:
    """The public elements of ``domain``'s function (each version not destroyed, the active
    one first) and the normalisation switches of the domain."""
    require(access, Action.BLIND_KEYS, domain)
    with deployment.reading() as connection:
        record = deployment.domain(connection, domain)
        ring = deployment.domain_keyring(connection, record)
        found = [
            BlindKey(
                domain, meta.version, meta.state.value, _public(domain, ring.key(meta.version))
            )
            for meta in ring
            if meta.state.value != "destroyed"
        ]
    with deployment.transaction() as connection:
        deployment.record(connection, access, action=Action.BLIND_KEYS, domains=[domain])
    ordered = sorted(found, key=lambda k: (k.state != "active", -k.version))
    return BlindKeys(domain, deployment.published_normalisation(record), ordered, deployment.scheme)


def _logged(
    deployment: Deployment, access: Access, action: Action, *, domain: str, count: int,
    version: int,
) -> None:  # fmt: skip
    """A call's one entry (``count`` in and out, the key version that answered), and its
    ``count`` identifiers charged to the client's budget."""
    with deployment.transaction() as connection:
        deployment.record(
            connection, access, action=action, domains=[domain],
            counts=Counts(count, count, 0), detail={"version": version},
        )  # fmt: skip
    deployment.budget.charge(access, count)


def _check_size(items: Sequence[object], noun: str) -> None:
    """A call's batch: one item at least (``no_elements``), :data:`MAX_ELEMENTS` at most
    (``too_many_values``)."""
    if not items:
        raise InvalidRequest(f"send at least one {noun}", code="no_elements")
    if len(items) > MAX_ELEMENTS:
        raise InvalidRequest(f"at most {MAX_ELEMENTS} {noun}s per call", code="too_many_values")


def _public(domain: str, key: DomainKey) -> bytes:
    return oprf_key(domain, key).public


def blind_pseudonym_text(domain: str, version: int, point: bytes) -> str:
    """``<domain>.v<version>.<base32 of the element>``, lower case, without padding."""
    return str(Pseudonym(domain, version, point))


def _parsed(text: str, domain: str, ring: Keyring) -> tuple[int, bytes]:
    """``(version, element)`` of a blind pseudonym of ``domain`` whose version still exists.
    Raises :class:`InvalidPseudonym`, :class:`DomainMismatch`, ``unknown_key_version``,
    ``key_destroyed`` or ``bad_element``; no message repeats the text."""
    pseudonym = parse_for_domain(text, domain=domain, keyring=ring)
    if len(pseudonym.value) != ELEMENT_BYTES:
        raise InvalidPseudonym("not a blind pseudonym (expected <domain>.v<version>.<52 base32>)")
    return pseudonym.version, element(pseudonym.value)


@audited(Action.BLIND_TRANSLATE)
def translate_blinded(
    deployment: Deployment, *, access: Access, domain: str, pseudonyms: Sequence[str]
) -> BlindTranslation:
    """``domain``'s blind pseudonyms of any version not destroyed, re-keyed to its active
    version (the same for a pseudonym already of it), without the identifiers, with one proof
    per source version (:func:`keys.oprf.rekeyed_with_proof`). Refused whole
    if one is not a blind pseudonym of the domain (``bad_pseudonym``, ``domain_mismatch``,
    ``unknown_key_version``, ``key_destroyed``, ``bad_element``)."""
    require(access, Action.BLIND_TRANSLATE, domain)
    _check_size(pseudonyms, "pseudonym")
    deployment.budget.admit(access)
    with deployment.reading() as connection:
        record = deployment.domain(connection, domain)
        if record.role != "partner":
            raise InvalidRequest("only a partner's domain has blind pseudonyms", code="wrong_role")
        ring = deployment.domain_keyring(connection, record)
        parsed = [_parsed(text, domain, ring) for text in pseudonyms]
        keys = {v: oprf_key(domain, ring.key(v)) for v in {v for v, _ in parsed}}
        active = ring.active
    target = oprf_key(domain, active)
    out: list[str] = [""] * len(parsed)
    proofs: dict[int, bytes] = {}
    for version, source in keys.items():
        places = [i for i, (v, _) in enumerate(parsed) if v == version]
        moved, proofs[version] = rekeyed_with_proof([parsed[i][1] for i in places], target, source)
        for i, point in zip(places, moved, strict=True):
            out[i] = blind_pseudonym_text(domain, active.version, point)
    _logged(
        deployment, access, Action.BLIND_TRANSLATE, domain=domain, count=len(out),
        version=active.version,
    )  # fmt: skip
    return BlindTranslation(domain, active.version, out, proofs)
