"""Who each entry was about, when it was about many: the subject index kept with the log.

An entry names one customer at most, in ``subject`` (and an association's other card in
``other_subject``). A batch, a file, an exchange, a campaign or a withdrawal (whose notice
names every card of the customer) is about many. For each identifier such an operation
touches, a reference of the customer is written into ``audit_subjects`` with the entry's
sequence number, in the operation's own transaction (COPY on PostgreSQL): a keyed BLAKE2b of the
base pseudonym, ``REF_BYTES`` long, under a key derived from the audit key
(:func:`index_secret`). The references are grouped by their first ``BUCKET_BITS``, one row per
entry and bucket holding the bucket's references end to end: a file of 200,000 rows and three
identifier columns writes 4,096 rows, not 600,000, and a look-up reads one row of each entry.
The index is purged with the entries, and :func:`tiers.audit_ops.lookup_subject` reads it
beside the entries' own columns.

Two customers whose references are the same 64 bits (about one chance in 10^8 among the 17
million customers of an alliance, three identifiers each) would find each other's bulk entries
in a look-up: the auditor sees the log anyway. The index is not part of the hash chain: a
database writer who deletes rows of it hides entries from subject look-ups, not from the log,
its verification or its export.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from hashlib import blake2b

from sqlalchemy import Connection

from audit import AuditEntry
from keys import DomainKey
from tiers.deployment import Deployment
from tiers.storage import audit_log

__all__ = [
    "BUCKET_BITS",
    "REF_BYTES",
    "Buckets",
    "bucketed",
    "index",
    "index_buckets",
    "references",
]

REF_BYTES = 8
BUCKET_BITS = 12

# bucket -> references of that bucket, end to end (pieces of, while a file streams)
Buckets = dict[int, list[bytes]]


def index_secret(key: DomainKey) -> bytes:
    """The index's own key, derived from an audit key version: its references are keyed
    BLAKE2b (one C call an identifier, a third of an HMAC's cost in Python)."""
    return key.mac(b"tiers subject index v1")


# The first reference of each bucket: bucket b holds the references from _STARTS[b] up to the
# next bucket's (12 bits: the first byte and the high half of the second).
_STARTS = [bytes([b >> 4, (b & 0xF) << 4]) for b in range(1 << BUCKET_BITS)]


def bucketed(secret: bytes, bases: Sequence[bytes], into: Buckets | None = None) -> Buckets:
    """The index references of ``bases`` under ``secret`` (:func:`index_secret`), added to
    ``into`` by bucket (what a file's blocks compute in their workers and the file gathers).
    Sorted in C, then cut at the buckets' bounds: no Python step per identifier beyond its
    MAC."""
    into = {} if into is None else into
    refs = sorted([blake2b(base, key=secret, digest_size=REF_BYTES).digest() for base in bases])
    if not refs:
        return into
    at = 0
    while at < len(refs):
        bucket = (refs[at][0] << 4) | (refs[at][1] >> 4)
        end = (
            bisect.bisect_left(refs, _STARTS[bucket + 1], at)
            if bucket + 1 < len(_STARTS)
            else len(refs)
        )
        piece = b"".join(refs[at:end])
        held = into.get(bucket)
        if held is None:
            into[bucket] = [piece]
        else:
            held.append(piece)
        at = end
    return into


def gather(into: Buckets, more: Mapping[int, list[bytes]]) -> None:
    """Add a block's buckets to a file's (a few thousand appends, not one per identifier)."""
    for bucket, pieces in more.items():
        held = into.get(bucket)
        if held is None:
            into[bucket] = list(pieces)
        else:
            held.extend(pieces)


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
        index_buckets(connection, entry, bucketed(index_secret(key), wanted))


def index_buckets(connection: Connection, entry: AuditEntry, buckets: Buckets) -> None:
    """Index ``entry`` under the references of ``buckets`` (see :func:`bucketed`)."""
    rows = [(bucket, entry.seq, b"".join(refs)) for bucket, refs in buckets.items()]
    audit_log.index_subjects(connection, rows)


def references(
    deployment: Deployment, connection: Connection, bases: Sequence[bytes]
) -> dict[int, set[bytes]]:
    """The index's references of ``bases`` under every live audit key version, by bucket."""
    ring = deployment.audit_keyring(connection)
    wanted: dict[int, set[bytes]] = {}
    for version in ring:
        if version.state.value != "destroyed":
            secret = index_secret(ring.key(version.version))
            for bucket, refs in bucketed(secret, list(bases)).items():
                wanted.setdefault(bucket, set()).update(refs)
    return wanted
