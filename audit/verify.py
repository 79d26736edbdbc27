"""Verification of an access log: chain, hashes, sequence, signed checkpoints (pure).

Works the same on the stored log and on an exported bundle, and needs only the checkpoint
public key. It names the first bad entry by its sequence number.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audit.checkpoint import Checkpoint, key_id, verify_checkpoint
from audit.entry import GENESIS, parse_entry
from audit.merkle import CompactRange, leaf_hash
from errors import AuditIntegrityError

__all__ = ["PurgeMark", "StoredEntry", "Verification", "verify_log"]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored or exported: its sequence number, canonical bytes and leaf hash."""

    seq: int
    data: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class PurgeMark:
    """What stands for purged entries ``[0, size)``: a signed checkpoint and its compact range."""

    checkpoint: Checkpoint
    frontier: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return self.checkpoint.tree_size


@dataclass(frozen=True, slots=True)
class Verification:
    first_seq: int
    entries: int
    checkpoints: int
    tree_size: int
    root: bytes
    key: str
    purged: int
    head: str = GENESIS
    # Filled in by whoever also checked the log against checkpoints kept outside it.
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        last = self.first_seq + self.entries - 1
        span = f"entries {self.first_seq}-{last}" if self.entries else "no entries"
        purged = f", {self.purged} purged under a signed checkpoint" if self.purged else ""
        return "; ".join(
            (
                f"audit log intact: {span}{purged}, {self.checkpoints} signed checkpoints, "
                f"root {self.root.hex()[:16]}…, key {self.key}",
                *self.notes,
            )
        )


def _bad(seq: int, why: str) -> AuditIntegrityError:
    return AuditIntegrityError(f"entry {seq}: {why}", code="tampered", seq=seq)


def _start(purge: PurgeMark | None, public_key: bytes) -> tuple[CompactRange, str]:
    if purge is None:
        return CompactRange(), GENESIS
    verify_checkpoint(purge.checkpoint, public_key)
    try:
        prefix = CompactRange(purge.size, purge.frontier)
    except AuditIntegrityError:
        raise _bad(purge.size, "the purge record was altered") from None
    if not hmac.compare_digest(prefix.root(), purge.checkpoint.root):
        raise _bad(purge.size, "the purge record was altered")
    return prefix, purge.checkpoint.chain


def verify_log(
    entries: Iterable[StoredEntry],
    checkpoints: Sequence[Checkpoint],
    public_key: bytes,
    purge: PurgeMark | None = None,
) -> Verification:
    """Verify everything; raises :class:`AuditIntegrityError` (with ``seq``) at the first fault.

    Checks, in order of sequence: each entry sits at its place (no gap, no swap), its bytes hash
    to its stored hash, it parses as a canonical entry of that sequence number, it links to the
    previous entry's hash; each checkpoint is signed by ``public_key`` and commits to exactly the
    entries before it; no checkpoint covers entries that are missing (truncation).
    """
    tree, previous = _start(purge, public_key)
    base = tree.size
    pending: dict[int, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        verify_checkpoint(checkpoint, public_key)
        if checkpoint.tree_size > base:
            pending.setdefault(checkpoint.tree_size, []).append(checkpoint)
    verified_up_to = base
    count = 0
    for offset, stored in enumerate(entries):
        count += 1
        seq = base + offset
        if stored.seq != seq:
            raise _bad(seq, "missing or out of order")
        if not hmac.compare_digest(leaf_hash(stored.data), stored.hash):
            raise _bad(seq, "content does not match its hash")
        try:
            entry = parse_entry(stored.data)
        except AuditIntegrityError:
            raise _bad(seq, "not a canonical entry") from None
        if entry.seq != seq:
            raise _bad(seq, "sequence number altered")
        if entry.prev != previous:
            raise _bad(seq, "does not link to the previous entry")
        previous = stored.hash.hex()
        tree.append(stored.hash)
        for checkpoint in pending.pop(tree.size, ()):
            if checkpoint.root != tree.root() or checkpoint.chain != previous:
                raise AuditIntegrityError(
                    f"entries {verified_up_to}-{seq} were rewritten: they do not match the "
                    f"checkpoint signed at size {tree.size}",
                    code="tampered",
                    seq=verified_up_to,
                )
            verified_up_to = tree.size
    if pending:
        missing = base + count
        raise _bad(missing, f"missing: a checkpoint covers entries up to {max(pending) - 1}")
    return Verification(
        first_seq=base,
        entries=count,
        checkpoints=len([c for c in checkpoints if c.tree_size > base]) + (purge is not None),
        tree_size=tree.size,
        root=tree.root(),
        key=key_id(public_key),
        purged=base,
        head=previous,
    )
