"""HMAC-SHA256 (RFC 2104) with the key pads hashed once, for the per-record hot path.

``hmac.new(key, msg, "sha256")`` hashes the inner and outer key pads on every call. Here they are
hashed once per key and the prepared ``hashlib`` states are copied for each message, which costs
about a third of ``hmac.new``. The construction is exactly RFC 2104; the RFC 4231 vectors and a
property test against the standard library's ``hmac`` pin it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["PreparedHmacSha256"]

_BLOCK = 64  # SHA-256 block size in bytes
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class PreparedHmacSha256:
    """HMAC-SHA256 under one fixed key. ``repr`` never shows the key."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 tag of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digest_many(self, messages: Iterable[bytes]) -> list[bytes]:
        """:meth:`digest` of each message, in order (one loop, for blocks of a file)."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        tags = []
        for message in messages:
            inner = inner_copy()
            inner.update(message)
            outer = outer_copy()
            outer.update(inner.digest())
            tags.append(outer.digest())
        return tags

    def __repr__(self) -> str:
        return "<PreparedHmacSha256 (key redacted)>"
