"""Who each entry was about, when it was about many: the subject index kept with the log.

An entry names one customer at most, in ``subject`` (and an association's other card in
``other_subject``). A batch, a file, an exchange, a campaign or a withdrawal (whose notice
names every card of the customer) is about many. For each identifier such an operation
touches, a reference of the customer is written into ``audit_subjects`` with the entry's
sequence number, in the operation's own transaction (COPY on PostgreSQL): a keyed BLAKE2b of the
base pseudonym, ``REF_BYTES`` long, under a key derived from the audit key
(:func:`index_secret`).

The references of an entry are grouped by their first bits into rows of about ``ROW_REFS``
each, the references end to end: an entry of ``n`` references uses the first
:func:`bits_for` ``(n)`` bits (at most ``BUCKET_BITS``), so a batch of ten values writes one row,
one of 10,000 values 32 rows, and a file of 200,000 rows and three identifier columns 2,048.
A row's ``bucket`` is ``(1 << bits) | prefix``, which names both how many bits and which
prefix; a look-up asks, for each reference, the ``BUCKET_BITS + 1`` buckets it could be in, and
reads one row of each entry. The index is purged with the entries, and
:func:`tiers.audit_ops.lookup_subject` reads it beside the entries' own columns.

Two customers whose references are the same 64 bits (about one chance in 10^8 among the 17
million customers of an alliance, three identifiers each) would find each other's bulk entries
in a look-up: the auditor sees the log anyway. The index is not part of the hash chain: a
database writer who deletes rows of it hides entries from subject look-ups, not from the log,
its verification or its export.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b

from sqlalchemy import Connection

from audit import AuditEntry
from keys import DomainKey
from tiers.deployment import Deployment
from tiers.storage import audit_log

__all__ = [
    "BUCKET_BITS",
    "REF_BYTES",
    "ROW_REFS",
    "Block",
    "Buckets",
    "Gathered",
    "bits_for",
    "block_of",
    "buckets_of",
    "index",
    "index_blocks",
    "references",
]

REF_BYTES = 8
BUCKET_BITS = 12  # the finest grouping: what a block's starts are kept by
ROW_REFS = 256  # about how many references an index row holds

# bucket ((1 << bits) | prefix) -> references of that bucket, end to end
Buckets = dict[int, bytes]


def bits_for(count: int) -> int:
    """The bits an entry of ``count`` references is grouped by: about ``ROW_REFS`` a row, at
    most ``BUCKET_BITS``."""
    return min(BUCKET_BITS, max(0, (count // ROW_REFS).bit_length() - 1))


def _top(ref: bytes) -> int:
    """The first ``BUCKET_BITS`` (12) bits of a reference."""
    return (ref[0] << 4) | (ref[1] >> 4)


def _bucket(bits: int, top: int) -> int:
    """The bucket of a reference whose first 12 bits are ``top``, in an entry grouped by
    ``bits`` of them: ``(1 << bits) | prefix``, which names both (what is written and what a
    look-up asks)."""
    return (1 << bits) | (top >> (BUCKET_BITS - bits))


def index_secret(key: DomainKey) -> bytes:
    """The index's own key, derived from an audit key version: its references are keyed
    BLAKE2b (one C call an identifier, a third of an HMAC's cost in Python)."""
    return key.mac(b"tiers subject index v1")


# The first reference of each bucket: bucket b holds the references from _STARTS[b] up to the
# next bucket's (12 bits: the first byte and the high half of the second).
_STARTS = [bytes([b >> 4, (b & 0xF) << 4]) for b in range(1 << BUCKET_BITS)]


@dataclass(frozen=True, slots=True)
class Block:
    """The references of a block of identifiers: sorted, end to end, with the index of the
    first reference of each bucket (and the count after the last). Two objects whatever the
    block's size: what a file's worker hands back, cheap to pickle and to keep."""

    refs: bytes
    starts: array[int]

    def span(self, first: int, end: int) -> bytes:
        """The references whose first 12 bits are from ``first`` up to ``end``, excluded."""
        return self.refs[self.starts[first] * REF_BYTES : self.starts[end] * REF_BYTES]


def block_of(secret: bytes, bases: Sequence[bytes]) -> Block:
    """The index references of ``bases`` under ``secret`` (:func:`index_secret`): made and
    sorted in C, then cut at the buckets' bounds: by bisection (4,096 of them, whatever the
    count), or, for fewer references than that, by counting them."""
    refs = sorted([blake2b(base, key=secret, digest_size=REF_BYTES).digest() for base in bases])
    if len(refs) < len(_STARTS):  # fewer references than buckets: counted, not bisected
        counts = [0] * (len(_STARTS) + 1)
        for ref in refs:
            counts[_top(ref) + 1] += 1
        return Block(b"".join(refs), array("I", itertools.accumulate(counts)))
    starts = array("I", [bisect.bisect_left(refs, start) for start in _STARTS])
    starts.append(len(refs))
    return Block(b"".join(refs), starts)


def buckets_of(blocks: Sequence[Block]) -> Buckets:
    """The references of ``blocks`` (one entry's) by bucket, each bucket's end to end: grouped
    by :func:`bits_for` their count (what is written)."""
    bits = bits_for(sum(len(block.refs) for block in blocks) // REF_BYTES)
    shift = BUCKET_BITS - bits
    found: Buckets = {}
    for prefix in range(1 << bits):
        first, end = prefix << shift, (prefix + 1) << shift
        joined = b"".join([block.span(first, end) for block in blocks])
        if joined:
            found[_bucket(bits, first)] = joined
    return found


@dataclass(slots=True)
class Gathered:
    """The references of a file's identifiers, gathered in file order: a block from each
    worker, and the identifiers of the rows read here, made into blocks as they accumulate."""

    secret: bytes
    blocks: list[Block] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)

    def add(self, bases: Iterable[bytes]) -> None:
        self.pending.extend(bases)
        if len(self.pending) >= _PENDING:
            self.seal()

    def seal(self) -> None:
        if self.pending:
            self.blocks.append(block_of(self.secret, self.pending))
            self.pending = []


_PENDING = 1 << 16  # identifiers held before they are made references


def index(
    deployment: Deployment,
    connection: Connection,
    entry: AuditEntry,
    bases: Iterable[bytes],
    *,
    named_too: bool = False,
) -> None:
    """Index ``entry`` under the customers of ``bases``: unless it names its one customer in
    ``subject``, where ``named_too`` is not set (a withdrawal is about every card of the
    customer, found by any of them once they are unlinked)."""
    if entry.subject is not None and not named_too:
        return
    wanted = list(dict.fromkeys(bases))
    if wanted:
        key = deployment.audit_keyring(connection).active
        index_blocks(connection, entry, [block_of(index_secret(key), wanted)])


def index_blocks(connection: Connection, entry: AuditEntry, blocks: Sequence[Block]) -> None:
    """Index ``entry`` under the references of ``blocks`` (see :func:`block_of`)."""
    rows = [(bucket, entry.seq, refs) for bucket, refs in buckets_of(blocks).items()]
    audit_log.index_subjects(connection, rows)


def references(
    deployment: Deployment, connection: Connection, bases: Sequence[bytes]
) -> dict[int, set[bytes]]:
    """The index's references of ``bases`` under every live audit key version, by each bucket
    they could be in (one for each number of bits an entry may be grouped by)."""
    ring = deployment.audit_keyring(connection)
    wanted: dict[int, set[bytes]] = {}
    for version in ring:
        if version.state.value != "destroyed":
            secret = index_secret(ring.key(version.version))
            block = block_of(secret, bases)
            for at in range(0, len(block.refs), REF_BYTES):
                ref = block.refs[at : at + REF_BYTES]
                top = _top(ref)
                for bits in range(BUCKET_BITS + 1):
                    wanted.setdefault(_bucket(bits, top), set()).add(ref)
    return wanted
