"""An oblivious pseudo-random function, RFC 9497, suite ristretto255-SHA512: the base mode (OPRF)
and the verifiable mode (VOPRF, a proof that the server used the key whose public half it
published). The group is libsodium's ristretto255 (through ``pysodium``, Debian's
``libsodium23``); no group arithmetic is written here, only the protocol's hashing and
transcripts around it, checked against the RFC's own test vectors (``tests/keys/test_oprf.py``).

The partner's half: :func:`blind`, then :func:`finalize` (after :func:`verify_proof` in the
verifiable mode). The service's half: :class:`OprfKey` (``evaluate``, ``evaluate_with_proof``).
Elements and scalars are their 32-byte encodings; a scalar is little-endian, as the RFC writes
it. An element received from the other side goes through :func:`element`, which refuses a
malformed encoding and the identity with :class:`~errors.InvalidRequest` (``bad_element``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from errors import InvalidRequest

__all__ = [
    "ELEMENT_BYTES",
    "Mode",
    "OprfKey",
    "blind",
    "derive_key_pair",
    "element",
    "finalize",
    "hash_to_group",
    "multiplied",
    "rekeyed",
    "rekeyed_with_proof",
    "scalar_ratio",
    "verify_proof",
]

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
_SUITE = b"ristretto255-SHA512"
_IDENTITY = bytes(ELEMENT_BYTES)


class Mode(IntEnum):
    """RFC 9497's modes (the partially-oblivious mode is not used)."""

    OPRF = 0
    VOPRF = 1


def _sodium() -> Any:
    """libsodium, loaded when first used: only blind mode needs it."""
    import pysodium  # noqa: PLC0415 - an optional system library behind it

    return pysodium


def _context(mode: Mode) -> bytes:
    return b"OPRFV1-" + bytes([mode]) + b"-" + _SUITE


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _prefixed(*parts: bytes) -> bytes:
    """Each part after its length on two bytes (the RFC's transcripts)."""
    return b"".join(_i2osp(len(part), 2) + part for part in parts)


def expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380, section 5.3.1, with SHA-512 (the hash of the suite)."""
    blocks = -(-length // 64)
    if blocks > 255 or len(dst) > 255 or length > 65535:
        raise ValueError("expand_message_xmd: length or tag too long")
    dst_prime = dst + _i2osp(len(dst), 1)
    first = hashlib.sha512(
        bytes(128) + message + _i2osp(length, 2) + _i2osp(0, 1) + dst_prime
    ).digest()
    previous = hashlib.sha512(first + _i2osp(1, 1) + dst_prime).digest()
    out = [previous]
    for i in range(2, blocks + 1):
        mixed = bytes(a ^ b for a, b in zip(first, previous, strict=True))
        previous = hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest()
        out.append(previous)
    return b"".join(out)[:length]


def hash_to_group(data: bytes, mode: Mode) -> bytes:
    """HashToGroup: 64 uniform bytes mapped to ristretto255 (libsodium's from_hash)."""
    uniform = expand_message_xmd(data, b"HashToGroup-" + _context(mode), 64)
    return bytes(_sodium().crypto_core_ristretto255_from_hash(uniform))


def _hash_to_scalar(data: bytes, dst: bytes) -> bytes:
    uniform = expand_message_xmd(data, dst, 64)
    return bytes(_sodium().crypto_core_ristretto255_scalar_reduce(uniform))


def _scalar_of(data: bytes, mode: Mode) -> bytes:
    return _hash_to_scalar(data, b"HashToScalar-" + _context(mode))


def element(data: bytes) -> bytes:
    """``data`` if it encodes an element of the group other than the identity; else
    :class:`InvalidRequest` (``bad_element``), naming no byte of it."""
    if len(data) != ELEMENT_BYTES or data == _IDENTITY:
        raise _bad_element()
    if not _sodium().crypto_core_ristretto255_is_valid_point(data):
        raise _bad_element()
    return data


def _bad_element() -> InvalidRequest:
    return InvalidRequest("an element is not a ristretto255 element", code="bad_element")


def _mul(scalar: bytes, point: bytes) -> bytes:
    try:
        return bytes(_sodium().crypto_scalarmult_ristretto255(scalar, point))
    except ValueError:  # the product is the identity: a zero scalar, or a bad point
        raise _bad_element() from None


def derive_key_pair(seed: bytes, info: bytes, mode: Mode) -> tuple[bytes, bytes]:
    """DeriveKeyPair: the secret scalar and the public element derived from ``seed``."""
    dst = b"DeriveKeyPair" + _context(mode)
    derive_input = seed + _prefixed(info)
    for counter in range(256):
        secret = _hash_to_scalar(derive_input + _i2osp(counter, 1), dst)
        if secret != bytes(SCALAR_BYTES):
            return secret, bytes(_sodium().crypto_scalarmult_ristretto255_base(secret))
    raise ValueError("DeriveKeyPair: no key after 256 tries")  # pragma: no cover


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar (libsodium's generator)."""
    return bytes(_sodium().crypto_core_ristretto255_scalar_random())


def blind(data: bytes, mode: Mode, blinding: bytes | None = None) -> tuple[bytes, bytes]:
    """Blind: ``(blind, blinded element)`` of ``data`` (a random blind unless given)."""
    blinding = blinding or random_scalar()
    point = hash_to_group(data, mode)
    if point == _IDENTITY:  # pragma: no cover - probability 2^-252
        raise InvalidRequest("the input maps to the identity", code="bad_element")
    return blinding, _mul(blinding, point)


def finalize(data: bytes, blinding: bytes, evaluated: bytes) -> bytes:
    """Finalize: the 64-byte output for ``data`` from its evaluated element."""
    inverse = _sodium().crypto_core_ristretto255_scalar_invert(blinding)
    unblinded = _mul(inverse, element(evaluated))
    return hashlib.sha512(_prefixed(data, unblinded) + b"Finalize").digest()


@dataclass(frozen=True, slots=True)
class _Composites:
    m: bytes
    z: bytes


def _composites(
    mode: Mode, public: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes],
    secret: bytes | None,
) -> _Composites:  # fmt: skip
    """ComputeComposites (with ``secret``: ComputeCompositesFast, the server's)."""
    sodium = _sodium()
    seed = hashlib.sha512(_prefixed(public, b"Seed-" + _context(mode))).digest()
    m = z = None
    for i, (c, d) in enumerate(zip(blinded, evaluated, strict=True)):
        transcript = _prefixed(seed) + _i2osp(i, 2) + _prefixed(c, d) + b"Composite"
        weight = _scalar_of(transcript, mode)
        term = _mul(weight, c)
        m = term if m is None else sodium.crypto_core_ristretto255_add(m, term)
        if secret is None:
            z_term = _mul(weight, d)
            z = z_term if z is None else sodium.crypto_core_ristretto255_add(z, z_term)
    if m is None:
        raise InvalidRequest("no element to evaluate", code="bad_element")
    if secret is not None:
        z = _mul(secret, m)
    assert z is not None  # one term at least
    return _Composites(m, z)


def _challenge(mode: Mode, public: bytes, comp: _Composites, t2: bytes, t3: bytes) -> bytes:
    return _scalar_of(_prefixed(public, comp.m, comp.z, t2, t3) + b"Challenge", mode)


def verify_proof(
    public: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    proof: bytes,
    *,
    generator: bytes | None = None,
) -> bool:
    """VerifyProof: whether ``proof`` shows that ``evaluated`` are ``blinded`` raised to the
    secret of ``public`` (the verifiable mode). A malformed proof is a wrong one.

    With ``generator`` (the RFC's ``A``, the group's generator otherwise), whether they are
    ``blinded`` times the scalar that takes ``generator`` to ``public``: a translation's proof
    (:func:`rekeyed_with_proof`), with the source version's public element as ``generator``."""
    if len(proof) != 2 * SCALAR_BYTES:
        return False
    sodium = _sodium()
    c, s = proof[:SCALAR_BYTES], proof[SCALAR_BYTES:]
    try:
        comp = _composites(Mode.VOPRF, element(public), blinded, evaluated, None)
        s_a = (
            sodium.crypto_scalarmult_ristretto255_base(s)
            if generator is None
            else _mul(s, element(generator))
        )
        t2 = sodium.crypto_core_ristretto255_add(s_a, _mul(c, public))
        t3 = sodium.crypto_core_ristretto255_add(_mul(s, comp.m), _mul(c, comp.z))
    except (InvalidRequest, ValueError):
        return False
    return hmac.compare_digest(_challenge(Mode.VOPRF, public, comp, t2, t3), c)


def scalar_ratio(numerator: bytes, denominator: bytes) -> bytes:
    """``a·b⁻¹`` of two non-zero scalars: the factor that takes ``b·X`` to ``a·X``."""
    sodium = _sodium()
    return bytes(
        sodium.crypto_core_ristretto255_scalar_mul(
            numerator, sodium.crypto_core_ristretto255_scalar_invert(denominator)
        )
    )


def multiplied(scalar: bytes, elements: Sequence[bytes], *, checked: bool = True) -> list[bytes]:
    """``scalar·E`` of each element ``E``, each checked first (:func:`element`) unless the
    caller made them itself (``checked=False``: a check costs a quarter of a multiplication)."""
    if not checked:
        return [_mul(scalar, item) for item in elements]
    return [_mul(scalar, element(item)) for item in elements]


def rekeyed(elements: Sequence[bytes], to: OprfKey, source: OprfKey) -> list[bytes]:
    """Each element ``P = a·X`` of ``source``'s function as ``to``'s, ``b·X = (b·a⁻¹)·P``,
    without ``X``: one multiplication an element, each element checked first."""
    return multiplied(scalar_ratio(to.secret, source.secret), elements)


def rekeyed_with_proof(
    elements: Sequence[bytes], to: OprfKey, source: OprfKey
) -> tuple[list[bytes], bytes]:
    """:func:`rekeyed`, with one proof of the batch: RFC 9497's ``GenerateProof`` with the
    ratio ``r = b·a⁻¹`` as ``k``, ``source``'s public element as ``A`` and ``to``'s as ``B``
    (``B = r·A``). It shows that each result is ``r`` times its element, ``r`` being the scalar
    that takes one published key to the other; :func:`verify_proof` with ``generator=A``."""
    ratio = scalar_ratio(to.secret, source.secret)
    moved = multiplied(ratio, elements)
    proof = _prove(
        to.mode, ratio, generator=source.public, public=to.public, blinded=elements,
        evaluated=moved, r=to._random(),
    )  # fmt: skip
    return moved, proof


def _prove(
    mode: Mode,
    secret: bytes,
    *,
    generator: bytes | None,
    public: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    r: bytes,
) -> bytes:
    """GenerateProof(k, A, B, C, D) with ``A`` the group's generator when ``generator`` is
    None, and the random scalar ``r``."""
    sodium = _sodium()
    comp = _composites(mode, public, blinded, evaluated, secret)
    t2 = (
        sodium.crypto_scalarmult_ristretto255_base(r) if generator is None else _mul(r, generator)
    )
    t3 = _mul(r, comp.m)
    c = _challenge(mode, public, comp, t2, t3)
    s = sodium.crypto_core_ristretto255_scalar_sub(
        r, sodium.crypto_core_ristretto255_scalar_mul(c, secret)
    )
    return bytes(c + s)


@dataclass(frozen=True, slots=True, repr=False)
class OprfKey:
    """A domain's key of the oblivious function: its secret scalar and public element (the
    secret never in a repr)."""

    secret: bytes
    public: bytes
    mode: Mode = Mode.VOPRF
    _random: Callable[[], bytes] = field(default=random_scalar)

    def __repr__(self) -> str:
        return f"OprfKey(mode={self.mode.name}, public={self.public.hex()[:16]}…)"

    def evaluate(self, blinded: Sequence[bytes]) -> list[bytes]:
        """BlindEvaluate of each element (each checked first)."""
        return [_mul(self.secret, element(item)) for item in blinded]

    def evaluate_with_proof(self, blinded: Sequence[bytes]) -> tuple[list[bytes], bytes]:
        """The evaluations of a batch and the one proof of them all (the RFC's batching)."""
        evaluated = self.evaluate(blinded)
        return evaluated, self.proof(blinded, evaluated)

    def proof(self, blinded: Sequence[bytes], evaluated: Sequence[bytes]) -> bytes:
        """GenerateProof, with the generator, this key's public element, and a random r."""
        return _prove(
            self.mode, self.secret, generator=None, public=self.public, blinded=blinded,
            evaluated=evaluated, r=self._random(),
        )  # fmt: skip
