"""The two-layer pseudonym scheme (pure functions, no I/O).

- Base pseudonym ``B = HMAC-SHA256(K_base, len‖kind ‖ len‖normalised)`` (32 bytes). ``B`` is
  internal: it is never returned to anyone.
- Domain pseudonym ``P = HMAC-SHA256(K_domain_v, B)`` truncated to its first 160 bits.
- Text form ``<domain>.v<version>.<base32 of P>``, lower-case, no padding: exactly 32 characters
  of base32. 160 bits keeps more than half of the hash and more than 128 bits (FIPS 198-1, §5);
  for a billion pseudonyms in one domain the chance of any collision is below 10⁻³⁰.

These are the ``hmac`` scheme's. Under the ``oprf`` scheme (:mod:`tiers.schemes`) ``B`` and
``P`` are ristretto255 elements of 32 bytes, and ``P``'s text has 52 letters of base32 (the
last one's four low bits zero); :class:`Pseudonym` holds and parses both.

Parsing is exact: only the canonical text of some pseudonym parses, and it parses back to it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from errors import DomainMismatch, InvalidPseudonym, KeyDestroyed, TiersError, UnknownKeyVersion
from keys import DomainKey, Keyring, length_prefixed

__all__ = [
    "DOMAIN_NAME",
    "PSEUDONYM_BYTES",
    "Pseudonym",
    "b32_text",
    "b32_texts",
    "base_pseudonym",
    "domain_pseudonym",
    "parse_for_domain",
    "parse_many_for_domain",
    "pseudonym_value",
    "pseudonym_values",
]

BASE_BYTES = 32
PSEUDONYM_BYTES = 20
ELEMENT_BYTES = 32  # an oprf-scheme pseudonym: a ristretto255 element

# base32 (RFC 4648, lower case) of 160 bits, by ten-bit groups: the standard library's encoder
# is pure Python and was a fifth of the cost of a file row. Equal to base64.b32encode (tested).
_PAIRS = [
    a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"
]
_SHIFTS = range(150, -1, -10)


def b32_text(value: bytes) -> str:
    """Lower-case base32 of a 20-byte pseudonym value (no padding: 160 bits = 32 characters)."""
    number = int.from_bytes(value, "big")
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])


# b32_texts: every 20-byte value in a 32-byte slot of one integer, whose 160 bits are then
# spread by halves (80 bits to each 128-bit half of the slot, 40 to each 64-bit quarter, ... 5
# to each byte), so that each byte holds one 5-bit group, which bytes.translate turns into its
# letter. Each step is one AND, shift and OR over the whole integer, in C: a third of the cost
# of b32_text per value for a block of a file. Equal to base64.b32encode (tested).
_SLOT_PAD = bytes(32 - PSEUDONYM_BYTES)
_LETTERS = b"abcdefghijklmnopqrstuvwxyz234567".ljust(256, b"?")


def _lanes(lane_bits: int, bits: int, offset: int) -> bytes:
    """A 32-byte slot with ``bits`` bits set from bit ``offset`` of each ``lane_bits`` lane."""
    lane = ((1 << bits) - 1) << offset
    return sum(lane << start for start in range(0, 256, lane_bits)).to_bytes(32, "big")


def _spreading_steps() -> list[tuple[bytes, bytes, int]]:
    """(low half, high half, shift of the high half) of each step, from 160 bits in 256."""
    steps = []
    lane, bits = 256, 8 * PSEUDONYM_BYTES
    while bits > 5:
        half = bits // 2
        steps.append((_lanes(lane, half, 0), _lanes(lane, half, half), lane // 2 - half))
        lane, bits = lane // 2, half
    return steps


_SPREADING_STEPS = _spreading_steps()
_FEWEST_TOGETHER = 8


def b32_texts(values: Sequence[bytes]) -> list[str]:
    """:func:`b32_text` of each 20-byte value, computed together (for blocks of values)."""
    count = len(values)
    if count == 0:
        return []
    if set(map(len, values)) != {PSEUDONYM_BYTES}:
        raise ValueError(f"b32_texts encodes {PSEUDONYM_BYTES}-byte values only")
    if count < _FEWEST_TOGETHER:  # building the masks costs more than it saves
        return [b32_text(value) for value in values]
    number = int.from_bytes(_SLOT_PAD + _SLOT_PAD.join(values), "big")
    for low, high, shift in _SPREADING_STEPS:
        number = (number & int.from_bytes(low * count, "big")) | (
            (number & int.from_bytes(high * count, "big")) << shift
        )
    text = number.to_bytes(32 * count, "big").translate(_LETTERS).decode("ascii")
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


DOMAIN_NAME = re.compile(r"[a-z][a-z0-9-]{1,31}")
_TEXT = re.compile(r"([a-z][a-z0-9-]{1,31})\.v([1-9][0-9]{0,8})\.([a-z2-7]{32}|[a-z2-7]{52})")


@dataclass(frozen=True, slots=True)
class Pseudonym:
    """A domain pseudonym: its domain, key version and value (160 bits, or an element of 256
    bits under the ``oprf`` scheme)."""

    domain: str
    version: int
    value: bytes

    def __post_init__(self) -> None:
        if not DOMAIN_NAME.fullmatch(self.domain):
            raise InvalidPseudonym("pseudonym domain is not a valid domain name")
        if not 1 <= self.version < 10**9:
            raise InvalidPseudonym("pseudonym version out of range")
        if len(self.value) not in (PSEUDONYM_BYTES, ELEMENT_BYTES):
            raise InvalidPseudonym(
                f"pseudonym value must be {PSEUDONYM_BYTES} or {ELEMENT_BYTES} bytes"
            )

    def __str__(self) -> str:
        if len(self.value) == PSEUDONYM_BYTES:
            return f"{self.domain}.v{self.version}.{b32_text(self.value)}"
        encoded = base64.b32encode(self.value).decode("ascii").rstrip("=").lower()
        return f"{self.domain}.v{self.version}.{encoded}"

    @classmethod
    def parse(cls, text: str) -> Pseudonym:
        """Parse the canonical text form; raises :class:`InvalidPseudonym` on anything else."""
        match = _TEXT.fullmatch(text)
        if match is None:
            raise InvalidPseudonym(
                "not a pseudonym (expected <domain>.v<version>.<32 or 52 base32>)"
            )
        domain, version, encoded = match.groups()
        padding = "=" * (-len(encoded) % 8)
        try:
            value = base64.b32decode(encoded.upper() + padding)
        except binascii.Error:  # pragma: no cover - the pattern admits only valid base32
            raise InvalidPseudonym("not a pseudonym") from None
        pseudonym = cls(domain, int(version), value)
        if padding and str(pseudonym) != text:  # stray bits in the last letter of an element
            raise InvalidPseudonym("not a pseudonym (not its canonical text)")
        return pseudonym


def base_pseudonym(base_key: DomainKey, kind: str, normalised: str) -> bytes:
    """``B`` for an already normalised identifier (see :mod:`tiers.identifiers`)."""
    return base_key.mac(length_prefixed(kind.encode("utf-8"), normalised.encode("utf-8")))


def pseudonym_value(domain_key: DomainKey, base: bytes) -> bytes:
    """The 160-bit value of ``base``'s pseudonym under ``domain_key`` (what the indexes hold)."""
    return domain_key.mac(base)[:PSEUDONYM_BYTES]


def pseudonym_values(domain_key: DomainKey, bases: Sequence[bytes]) -> list[bytes]:
    """:func:`pseudonym_value` of each base pseudonym, in order (one loop)."""
    return [tag[:PSEUDONYM_BYTES] for tag in domain_key.mac_many(bases)]


def domain_pseudonym(domain_key: DomainKey, domain: str, base: bytes) -> Pseudonym:
    """``P`` of ``base`` in ``domain`` under ``domain_key`` (its version goes into the text)."""
    return Pseudonym(domain, domain_key.version, pseudonym_value(domain_key, base))


def parse_for_domain(text: str, *, domain: str, keyring: Keyring) -> Pseudonym:
    """Parse ``text`` as a pseudonym of ``domain`` whose key version can still be used.

    Raises :class:`InvalidPseudonym` (malformed), :class:`DomainMismatch` (another domain's),
    :class:`~errors.UnknownKeyVersion` (no such version) or
    :class:`~errors.KeyDestroyed` (its version was crypto-shredded).
    """
    pseudonym = Pseudonym.parse(text)
    if pseudonym.domain != domain:
        raise DomainMismatch(f"expected a pseudonym of domain {domain}")
    keyring.key(pseudonym.version)
    return pseudonym


# What :func:`parse_for_domain` raises: one pseudonym is unusable, not the call.
_PARSE_ERRORS = (InvalidPseudonym, DomainMismatch, UnknownKeyVersion, KeyDestroyed)


def parse_many_for_domain(
    texts: Sequence[str], *, domain: str, keyring: Keyring
) -> list[tuple[int, bytes] | TiersError]:
    """``(version, value)`` of each text parsed by :func:`parse_for_domain` (surrounding
    spaces ignored), in order, or in its place the error that refuses it."""
    parsed: list[tuple[int, bytes] | TiersError] = []
    for text in texts:
        try:
            pseudonym = parse_for_domain(text.strip(), domain=domain, keyring=keyring)
        except _PARSE_ERRORS as error:
            parsed.append(error.with_traceback(None))  # kept without this frame: no cycle
        else:
            parsed.append((pseudonym.version, pseudonym.value))
    return parsed
