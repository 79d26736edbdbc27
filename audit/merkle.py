"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification (pure functions).

- empty root ``SHA-256("")``; leaf ``SHA-256(0x00 ‖ entry)``; node ``SHA-256(0x01 ‖ l ‖ r)``;
- a tree of n > 1 leaves splits at k, the largest power of two below n.

:class:`CompactRange` keeps only the roots of the maximal aligned subtrees of a prefix, so a
log can be extended and its root computed without its oldest leaves (used after a purge).
Verifiers raise :class:`~errors.AuditIntegrityError` or return ``True``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Literal

from errors import AuditIntegrityError

__all__ = [
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf *hashes*."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


class CompactRange:
    """The roots of the maximal aligned subtrees covering leaves ``[0, size)``.

    ``append`` costs O(log n); ``root()`` equals :func:`root` over all the leaves appended.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != bin(size).count("1"):
            raise AuditIntegrityError("a compact range must hold one node per set bit of its size")
        self.size = size
        self._nodes = list(nodes)

    @property
    def nodes(self) -> list[bytes]:
        return list(self._nodes)

    def append(self, leaf: bytes) -> None:
        node = leaf
        size = self.size
        # Merge with the completed subtrees to the left while their sizes match.
        while size & 1:
            node = node_hash(self._nodes.pop(), node)
            size >>= 1
        self._nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        result = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            result = node_hash(node, result)
        return result

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self._nodes)

    def subtrees(self) -> dict[tuple[int, int], bytes]:
        """``{(start, end): hash}`` of the subtrees this range holds."""
        spans: dict[tuple[int, int], bytes] = {}
        start = 0
        bits = [1 << b for b in range(self.size.bit_length() - 1, -1, -1) if self.size >> b & 1]
        for width, node in zip(bits, self._nodes, strict=True):
            spans[(start, start + width)] = node
            start += width
        return spans


class _Tree:
    """Subtree hashes over leaves ``[base, n)``, with ``[0, base)`` known only as a CompactRange."""

    def __init__(self, leaves: Sequence[bytes], prefix: CompactRange | None) -> None:
        self.base = prefix.size if prefix else 0
        self.leaves = leaves
        self.known = prefix.subtrees() if prefix else {}

    def mth(self, lo: int, hi: int) -> bytes:
        if lo >= self.base:
            return root(self.leaves[lo - self.base : hi - self.base])
        if (lo, hi) in self.known:
            return self.known[(lo, hi)]
        if hi - lo == 1 or hi <= self.base:
            raise AuditIntegrityError("the proof needs entries that were purged")
        k = _split(hi - lo)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]) of RFC 6962 §2.1.1, m relative to lo."""
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b) of RFC 6962 §2.1.2."""
        n = hi - lo
        if m == n:
            return [] if whole else [self.mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, whole), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def inclusion_proof(
    index: int, size: int, leaves: Sequence[bytes], prefix: CompactRange | None = None
) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    ``leaves`` are the leaf hashes from ``prefix.size`` on (all of them without a prefix).
    """
    base = prefix.size if prefix else 0
    if not base <= index < size <= base + len(leaves):
        raise AuditIntegrityError("no such leaf in a tree of that size")
    return _Tree(leaves, prefix).path(index, 0, size)


def consistency_proof(
    old_size: int, new_size: int, leaves: Sequence[bytes], prefix: CompactRange | None = None
) -> list[bytes]:
    """PROOF(old_size, D[new_size]): the older tree is a prefix of the newer one."""
    base = prefix.size if prefix else 0
    if not 0 <= old_size <= new_size <= base + len(leaves):
        raise AuditIntegrityError("sizes out of range for a consistency proof")
    if old_size in (0, new_size):
        return []
    return _Tree(leaves, prefix).subproof(old_size, 0, new_size, True)


def _fail(what: str) -> AuditIntegrityError:
    return AuditIntegrityError(f"{what} proof does not verify", code="bad_proof")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> Literal[True]:
    """RFC 9162 §2.1.3.2. Raises :class:`AuditIntegrityError` unless the proof holds."""
    if not 0 <= index < size:
        raise _fail("inclusion")
    fn, sn = index, size - 1
    result = leaf
    for node in proof:
        if sn == 0:
            raise _fail("inclusion")
        if fn & 1 or fn == sn:
            result = node_hash(node, result)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not hmac.compare_digest(result, expected_root):
        raise _fail("inclusion")
    return True


def verify_consistency(  # noqa: PLR0912 - the RFC 9162 algorithm, step by step
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> Literal[True]:
    """RFC 9162 §2.1.4.2. Raises :class:`AuditIntegrityError` unless the proof holds."""
    if not 0 <= old_size <= new_size:
        raise _fail("consistency")
    if old_size == new_size:
        if proof or not hmac.compare_digest(old_root, new_root):
            raise _fail("consistency")
        return True
    if old_size == 0:
        if proof:
            raise _fail("consistency")
        return True
    if not proof:
        raise _fail("consistency")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            raise _fail("consistency")
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not hmac.compare_digest(fr, old_root) or not hmac.compare_digest(sr, new_root):
        raise _fail("consistency")
    return True
