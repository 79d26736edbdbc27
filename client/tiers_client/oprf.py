"""The partner's half of RFC 9497 (OPRF, suite ristretto255-SHA512), verifiable mode by default:
hash an identifier to the group, blind it, check the service's proof against the domain's public
element, unblind. The group is libsodium's ristretto255 (``pysodium``); only the RFC's hashing
and transcripts are written here, checked against the RFC's own vectors (Appendix A.1) by
``tests/client/test_blind.py``.

The service's side is a separate implementation (``keys/oprf.py`` of the server): the partner's
half must run where the server's packages are not installed, and the two are held together by
the RFC's vectors and by the end-to-end tests, not by shared code.

Elements and scalars are their 32-byte encodings. An element that is malformed, or the
identity, raises :class:`BadElement`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from tiers_client._extras import blind_extra

__all__ = [
    "OPRF",
    "VOPRF",
    "BadElement",
    "blind",
    "finalize",
    "hash_to_group",
    "identifier_input",
    "unblind",
    "verify_proof",
]

OPRF, VOPRF = 0, 1  # RFC 9497's mode bytes
ELEMENT_BYTES = SCALAR_BYTES = 32
_IDENTITY = bytes(ELEMENT_BYTES)


class BadElement(ValueError):
    """Not an encoding of a ristretto255 element other than the identity."""


def _sodium() -> Any:
    return blind_extra().sodium


def _context(mode: int) -> bytes:
    return b"OPRFV1-" + bytes([mode]) + b"-ristretto255-SHA512"


def _with_lengths(*parts: bytes) -> bytes:
    """The RFC's transcripts: each part after its length on two bytes."""
    return b"".join(len(part).to_bytes(2, "big") + part for part in parts)


def identifier_input(kind: str, normalised: str) -> bytes:
    """What is hashed to the group for an identifier: its kind and its canonical form, each
    after its length on four bytes (the encoding of the service's base pseudonym)."""
    kind_bytes, value_bytes = kind.encode(), normalised.encode()
    return (
        len(kind_bytes).to_bytes(4, "big") + kind_bytes
        + len(value_bytes).to_bytes(4, "big") + value_bytes
    )  # fmt: skip


def _xmd(message: bytes, dst: bytes, length: int = 64) -> bytes:
    """expand_message_xmd with SHA-512 (RFC 9380, 5.3.1), for the lengths used here."""
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(
        bytes(128) + message + length.to_bytes(2, "big") + b"\x00" + dst_prime
    ).digest()
    blocks = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    while len(blocks) * 64 < length:
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha512(mixed + bytes([len(blocks) + 1]) + dst_prime).digest())
    return b"".join(blocks)[:length]


def hash_to_group(data: bytes, mode: int = VOPRF) -> bytes:
    """HashToGroup: libsodium's map of 64 uniform bytes to ristretto255."""
    uniform = _xmd(data, b"HashToGroup-" + _context(mode))
    return bytes(_sodium().crypto_core_ristretto255_from_hash(uniform))


def _hash_to_scalar(data: bytes, mode: int) -> bytes:
    uniform = _xmd(data, b"HashToScalar-" + _context(mode))
    return bytes(_sodium().crypto_core_ristretto255_scalar_reduce(uniform))


def _checked(data: bytes) -> bytes:
    if (
        len(data) != ELEMENT_BYTES
        or data == _IDENTITY
        or not _sodium().crypto_core_ristretto255_is_valid_point(data)
    ):
        raise BadElement("not a ristretto255 element other than the identity")
    return data


def _times(scalar: bytes, point: bytes) -> bytes:
    try:
        return bytes(_sodium().crypto_scalarmult_ristretto255(scalar, point))
    except ValueError:  # libsodium refuses a product that is the identity
        raise BadElement("the product is the identity") from None


def _add(a: bytes, b: bytes) -> bytes:
    return bytes(_sodium().crypto_core_ristretto255_add(a, b))


def blind(data: bytes, blinding: bytes | None = None, mode: int = VOPRF) -> tuple[bytes, bytes]:
    """Blind: ``(blind, blinded element)`` of ``data``, with a random blind unless one is
    given (the RFC's vectors give theirs)."""
    blinding = blinding or bytes(_sodium().crypto_core_ristretto255_scalar_random())
    return blinding, _times(blinding, _checked(hash_to_group(data, mode)))


def unblind(blinding: bytes, evaluated: bytes) -> bytes:
    """The evaluated element without its blind: the key times the hash of the input, the
    same however the input was blinded."""
    inverse = bytes(_sodium().crypto_core_ristretto255_scalar_invert(blinding))
    return _times(inverse, _checked(evaluated))


def finalize(data: bytes, blinding: bytes, evaluated: bytes) -> bytes:
    """Finalize: the RFC's 64-byte output for ``data``."""
    return hashlib.sha512(_with_lengths(data, unblind(blinding, evaluated)) + b"Finalize").digest()


def _composites(
    public: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes], mode: int
) -> tuple[bytes, bytes]:
    """ComputeComposites, the verifier's: the weighted sums of the blinded and evaluated
    elements, with weights drawn from the whole batch's transcript."""
    if not blinded or len(blinded) != len(evaluated):
        raise BadElement("a batch of matching, non-empty element lists is needed")
    seed = hashlib.sha512(_with_lengths(public, b"Seed-" + _context(mode))).digest()
    m = z = b""
    for i, (c, d) in enumerate(zip(blinded, evaluated, strict=True)):
        transcript = _with_lengths(seed) + i.to_bytes(2, "big") + _with_lengths(c, d)
        weight = _hash_to_scalar(transcript + b"Composite", mode)
        m_term, z_term = _times(weight, _checked(c)), _times(weight, _checked(d))
        m, z = (m_term, z_term) if i == 0 else (_add(m, m_term), _add(z, z_term))
    return m, z


def verify_proof(
    public: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    proof: bytes,
    mode: int = VOPRF,
    *,
    generator: bytes | None = None,
) -> bool:
    """VerifyProof: whether ``proof`` shows that each of ``evaluated`` is its ``blinded``
    element times the secret behind ``public``. Anything malformed is a proof that fails.

    With ``generator`` (the RFC's ``A``; the group's generator otherwise): times the scalar
    that takes ``generator`` to ``public``, as a translation's proof shows with the source
    version's public element as ``generator`` and the active one's as ``public``."""
    if len(proof) != 2 * SCALAR_BYTES:
        return False
    c, s = proof[:SCALAR_BYTES], proof[SCALAR_BYTES:]
    sodium = _sodium()
    try:
        m, z = _composites(_checked(public), blinded, evaluated, mode)
        s_a = (
            bytes(sodium.crypto_scalarmult_ristretto255_base(s))
            if generator is None
            else _times(s, _checked(generator))
        )
        t2 = _add(s_a, _times(c, public))
        t3 = _add(_times(s, m), _times(c, z))
    except ValueError:  # BadElement, or libsodium refusing a scalar
        return False
    challenge = _hash_to_scalar(_with_lengths(public, m, z, t2, t3) + b"Challenge", mode)
    return hmac.compare_digest(challenge, c)
