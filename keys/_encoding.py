"""Unambiguous length-prefixed encoding of byte fields, shared by every keyed construction."""

from __future__ import annotations

__all__ = ["length_prefixed"]


def length_prefixed(*fields: bytes) -> bytes:
    """Concatenate ``fields``, each preceded by its length as 4 big-endian bytes.

    No two different tuples of fields give the same bytes, so ``("ab", "c")`` and
    ``("a", "bc")`` can never collide.
    """
    out = bytearray()
    for field in fields:
        out += len(field).to_bytes(4, "big")
        out += field
    return bytes(out)
