"""Repository of the access log: the locked head, entries, checkpoints, purges."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from audit import ORIGIN, Checkpoint, CompactRange, PurgeMark, StoredEntry
from tiers.storage import meta as meta_repo
from tiers.storage._dialect import bulk_insert_ignoring_duplicates, in_chunks
from tiers.storage.tables import audit_checkpoints, audit_entries, audit_state, audit_subjects

__all__ = [
    "AuditState",
    "checkpoint_at",
    "checkpoints",
    "delete_before",
    "entry_at",
    "entry_row",
    "fill_other_subjects",
    "insert_checkpoint",
    "insert_entries",
    "last_seq_before",
    "leaves_between",
    "lock_state",
    "log_origin",
    "other_subject_of",
    "peek_state",
    "purge_mark",
    "query",
    "save_state",
    "stored_entries",
    "tree_leaves",
]

_BATCH = 5000


@dataclass(slots=True)
class AuditState:
    next_seq: int
    head: str
    frontier: list[bytes]
    last_checkpoint: int
    purged: int
    purge_frontier: list[bytes] | None


def _nodes(text: str | None) -> list[bytes] | None:
    return None if text is None else [bytes.fromhex(node) for node in json.loads(text)]


def _text(nodes: Sequence[bytes]) -> str:
    return json.dumps([node.hex() for node in nodes])


# The statements of an append, built once: every request appends, and building a statement
# costs as much as running it.
_LOCK = select(audit_state).where(audit_state.c.id == 1).with_for_update()
_SAVE = update(audit_state).where(audit_state.c.id == 1)
_INSERT = insert(audit_entries)


def lock_state(connection: Connection) -> AuditState:
    """The log head, locked until the transaction ends (``FOR UPDATE``; SQLite locks the file)."""
    row = connection.execute(_LOCK).one()
    return AuditState(
        row.next_seq,
        row.head,
        _nodes(row.frontier) or [],
        row.last_checkpoint,
        row.purged,
        _nodes(row.purge_frontier),
    )


def save_state(connection: Connection, state: AuditState) -> None:
    connection.execute(
        _SAVE,
        {
            "next_seq": state.next_seq,
            "head": state.head,
            "frontier": _text(state.frontier),
            "last_checkpoint": state.last_checkpoint,
            "purged": state.purged,
            "purge_frontier": None if state.purge_frontier is None else _text(state.purge_frontier),
        },
    )


def other_subject_of(detail: Mapping[str, object]) -> str | None:
    """The second customer an entry names (``detail.other_subject``), searchable beside its
    subject in the ``other_subject`` column."""
    other = detail.get("other_subject")
    return other if isinstance(other, str) else None


def entry_row(
    *,
    seq: int,
    time: datetime,
    actor: str,
    action: str,
    outcome: str,
    subject: str | None,
    other_subject: str | None = None,
    entry: bytes,
    digest: bytes,
) -> dict[str, object]:
    """The ``audit_entries`` row of an entry, for :func:`insert_entries`."""
    return {
        "seq": seq,
        "time": time,
        "actor": actor[:128],
        "action": action[:64],
        "outcome": outcome,
        "subject": subject,
        "other_subject": other_subject,
        "entry": entry.decode("ascii"),
        "hash": digest,
    }


def insert_entries(connection: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert :func:`entry_row` rows (one statement, executed for each)."""
    if rows:
        connection.execute(_INSERT, list(rows))


def insert_checkpoint(connection: Connection, checkpoint: Checkpoint) -> None:
    connection.execute(
        insert(audit_checkpoints).values(
            tree_size=checkpoint.tree_size,
            root=checkpoint.root,
            chain=checkpoint.chain,
            time=checkpoint.time,
            signature=checkpoint.signature,
            key=checkpoint.key,
            origin=checkpoint.origin,
        )
    )


META_ORIGIN = "audit_origin"


def log_origin(connection: Connection) -> str:
    """The log's origin line, chosen by ``tiers init`` (a log made before origins were chosen
    keeps the one its checkpoints were signed with)."""
    return meta_repo.get(connection, name=META_ORIGIN) or ORIGIN


def _checkpoint(row: Row[Any], origin: str) -> Checkpoint:
    r = row
    return Checkpoint(r.tree_size, r.root, r.chain, r.time, r.signature, r.key, r.origin or origin)


def checkpoints(connection: Connection) -> list[Checkpoint]:
    """Every checkpoint the database holds; one without its origin (signed before migration
    0012, or the column lost in a downgrade) has the log's."""
    origin = log_origin(connection)
    rows = connection.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size))
    return [_checkpoint(row, origin) for row in rows]


def checkpoint_at(connection: Connection, *, size: int) -> Checkpoint | None:
    row = connection.execute(
        select(audit_checkpoints).where(audit_checkpoints.c.tree_size == size)
    ).one_or_none()
    return None if row is None else _checkpoint(row, log_origin(connection))


_STATE = select(audit_state).where(audit_state.c.id == 1)


def peek_state(connection: Connection) -> tuple[int, int]:
    """``(next_seq, last_checkpoint)`` without locking: whether a checkpoint is due."""
    row = connection.execute(_STATE).one()
    return int(row.next_seq), int(row.last_checkpoint)


def leaves_between(connection: Connection, *, start: int, end: int) -> list[StoredEntry]:
    """The stored entries ``start <= seq < end``, in order."""
    rows = connection.execute(
        select(audit_entries.c.seq, audit_entries.c.entry, audit_entries.c.hash)
        .where(audit_entries.c.seq >= start, audit_entries.c.seq < end)
        .order_by(audit_entries.c.seq)
    )
    return [StoredEntry(r.seq, r.entry.encode("ascii", "replace"), r.hash) for r in rows]


def purge_mark(connection: Connection, state: AuditState) -> PurgeMark | None:
    """The signed stand-in for purged entries, or ``None`` if nothing was ever purged."""
    if not state.purged:
        return None
    checkpoint = checkpoint_at(connection, size=state.purged)
    if checkpoint is None or state.purge_frontier is None:
        return PurgeMark(Checkpoint(state.purged, b"", "", datetime.min, b"", ""), ())
    return PurgeMark(checkpoint, tuple(state.purge_frontier))


def stored_entries(connection: Connection) -> Iterator[tuple[StoredEntry, Row[Any]]]:
    """Every entry in sequence order, with its row (for the column checks), in batches."""
    last = -1
    while True:
        rows = connection.execute(
            select(audit_entries)
            .where(audit_entries.c.seq > last)
            .order_by(audit_entries.c.seq)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            yield StoredEntry(row.seq, row.entry.encode("ascii", "replace"), row.hash), row
        last = rows[-1].seq


def tree_leaves(connection: Connection) -> tuple[list[bytes], CompactRange | None]:
    """Every stored leaf hash in order, and the compact range that stands for purged ones."""
    state = lock_state(connection)
    prefix = None
    if state.purged:
        prefix = CompactRange(state.purged, state.purge_frontier or [])
    return [stored.hash for stored, _ in stored_entries(connection)], prefix


def query(
    connection: Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    actions: Sequence[str] | None = None,
    outcome: str | None = None,
    subjects: Sequence[str] | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> list[bytes]:
    """Canonical bytes of the matching entries, in sequence order (those after the entry
    ``after`` when given: a page's cursor)."""
    statement = select(audit_entries.c.entry).order_by(audit_entries.c.seq)
    if after is not None:
        statement = statement.where(audit_entries.c.seq > after)
    if actions is not None:
        statement = statement.where(audit_entries.c.action.in_(list(actions)))
    if outcome is not None:
        statement = statement.where(audit_entries.c.outcome == outcome)
    if since is not None:
        statement = statement.where(audit_entries.c.time >= since)
    if until is not None:
        statement = statement.where(audit_entries.c.time < until)
    if actor is not None:
        statement = statement.where(audit_entries.c.actor == actor)
    if action is not None:
        statement = statement.where(audit_entries.c.action == action)
    if subjects is not None:
        statement = statement.where(
            or_(
                audit_entries.c.subject.in_(list(subjects)),
                audit_entries.c.other_subject.in_(list(subjects)),
            )
        )
    if limit is not None:
        statement = statement.limit(limit)
    return [text.encode("ascii", "replace") for text in connection.execute(statement).scalars()]


def entry_at(connection: Connection, *, seq: int) -> bytes | None:
    text = connection.execute(
        select(audit_entries.c.entry).where(audit_entries.c.seq == seq)
    ).scalar_one_or_none()
    return None if text is None else text.encode("ascii", "replace")


def last_seq_before(connection: Connection, *, cutoff: datetime, first: int) -> int | None:
    """The end of the longest prefix of entries all older than ``cutoff`` (exclusive end)."""
    newer = connection.execute(
        select(func.min(audit_entries.c.seq)).where(audit_entries.c.time >= cutoff)
    ).scalar_one_or_none()
    if newer is None:
        newer = connection.execute(select(func.max(audit_entries.c.seq))).scalar_one_or_none()
        return None if newer is None else int(newer) + 1
    return int(newer) if newer > first else None


def index_subjects(connection: Connection, rows: Sequence[tuple[int, int, bytes]]) -> None:
    """Rows of the subject index: ``(bucket, entry seq, references end to end)`` (see
    tiers._subject_index; bulk, COPY on PostgreSQL)."""
    bulk_insert_ignoring_duplicates(connection, audit_subjects, ["bucket", "seq", "refs"], rows)


def indexed_seqs(
    connection: Connection, wanted: Mapping[int, set[bytes]], *, ref_bytes: int
) -> list[int]:
    """The entries the subject index says were about any of ``wanted`` (references by
    bucket, each ``ref_bytes`` long)."""
    found: set[int] = set()
    for chunk in in_chunks(list(wanted)):
        statement = select(
            audit_subjects.c.bucket, audit_subjects.c.seq, audit_subjects.c.refs
        ).where(audit_subjects.c.bucket.in_(chunk))
        for bucket, seq, packed in connection.execute(statement):
            held = {packed[at : at + ref_bytes] for at in range(0, len(packed), ref_bytes)}
            if wanted[bucket] & held:
                found.add(int(seq))
    return sorted(found)


def entries_at(connection: Connection, seqs: Sequence[int]) -> list[bytes]:
    """Canonical bytes of the entries at ``seqs``, in sequence order."""
    found: list[tuple[int, str]] = []
    for chunk in in_chunks(seqs):
        statement = select(audit_entries.c.seq, audit_entries.c.entry).where(
            audit_entries.c.seq.in_(chunk)
        )
        found.extend((int(seq), str(entry)) for seq, entry in connection.execute(statement))
    return [text.encode("ascii", "replace") for _, text in sorted(found)]


def delete_before(connection: Connection, *, end: int) -> int:
    """Delete entries ``seq < end``, their subject index and every checkpoint below ``end``;
    returns entries deleted."""
    connection.execute(delete(audit_subjects).where(audit_subjects.c.seq < end))
    result = connection.execute(delete(audit_entries).where(audit_entries.c.seq < end))
    connection.execute(delete(audit_checkpoints).where(audit_checkpoints.c.tree_size < end))
    return int(result.rowcount or 0)


def fill_other_subjects(connection: Connection) -> int:
    """Fill the ``other_subject`` column from each entry's ``detail.other_subject`` where it is
    empty: entries written before migration 0009, or restored from a backup made before it.
    Returns how many were filled. The entries themselves, and so the chain, are not touched."""
    rows = connection.execute(
        select(audit_entries.c.seq, audit_entries.c.entry).where(
            audit_entries.c.other_subject.is_(None),
            audit_entries.c.entry.like('%"other_subject"%'),
        )
    ).all()
    filled = 0
    for seq, text in rows:
        other = other_subject_of(json.loads(text).get("detail", {}))
        if other is not None:
            connection.execute(
                update(audit_entries).where(audit_entries.c.seq == seq).values(other_subject=other)
            )
            filled += 1
    return filled


def newest_checkpoint_time(connection: Connection) -> datetime | None:
    """When the newest signed checkpoint was signed (None before the first)."""
    return connection.execute(select(func.max(audit_checkpoints.c.time))).scalar_one_or_none()
