"""Signing checkpoints outside the database, never over a history inconsistent with the last.

The database's log is written by whoever can write to the database; the checkpoint store
(:mod:`tiers.storage.checkpoint_store`) is not. Before it signs, the service proves, by an
RFC 9162 §2.1.4 consistency proof built from the store's last checkpoint and its compact range,
that the database's tree extends the tree it signed last, and re-hashes and re-chains every
entry in between. If that fails, it signs nothing, marks the deployment faulty (every write
that needs the log is refused with ``log_inconsistent``), and says so loudly. It never re-signs
on its own: recovery is an operator's decision (SECURITY.md, "Recovery").

A checkpoint is appended and fsynced to the store before the database records it: a crash in
between leaves the store ahead of the database's record, which the next signing reconciles.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from audit import CompactRange, consistency_proof, leaf_hash
from audit.entry import GENESIS, entry_link
from audit.merkle import verify_consistency
from errors import AuditIntegrityError, LogInconsistent
from tiers.storage import audit_log
from tiers.storage.checkpoint_store import StoredCheckpoint

if TYPE_CHECKING:
    from tiers.deployment import Deployment

__all__ = [
    "META_ORIGIN",
    "adopt",
    "check_extends",
    "new_origin",
    "sign_pending",
]

META_ORIGIN = audit_log.META_ORIGIN
_log = logging.getLogger("tiers.audit")


def new_origin() -> str:
    """A fresh origin: unique, so that no two deployments claim the same one by accident."""
    return f"tiers/{secrets.token_hex(8)}"


origin_of = audit_log.log_origin


def _inconsistent(deployment: Deployment, message: str) -> LogInconsistent:
    fault = LogInconsistent(
        f"{message}. Nothing is signed over it and every write that needs the log is refused; "
        "see SECURITY.md, 'Recovery'"
    )
    deployment.log_fault = fault
    _log.critical("access log inconsistent with the checkpoint store: %s", message)
    return fault


def _leaves_since(
    deployment: Deployment, connection: Connection, last: StoredCheckpoint, end: int
) -> tuple[list[bytes], str]:
    """The leaf hashes of entries ``[last.size, end)``, each re-hashed from its bytes and
    checked to chain from the last signed entry; and the chain head they end on."""
    start, chain = last.size, last.checkpoint.chain
    leaves: list[bytes] = []
    for offset, stored in enumerate(audit_log.leaves_between(connection, start=start, end=end)):
        seq = start + offset
        digest = leaf_hash(stored.data)
        try:
            linked_seq, prev = entry_link(stored.data)
        except AuditIntegrityError:
            raise _inconsistent(deployment, f"entry {seq} is not an entry") from None
        if stored.seq != seq or linked_seq != seq or digest != stored.hash or prev != chain:
            raise _inconsistent(
                deployment, f"entry {seq} does not follow the checkpoint of size {start}"
            )
        leaves.append(digest)
        chain = digest.hex()
    if len(leaves) != end - start:
        raise _inconsistent(deployment, f"entries after the checkpoint of size {start} are missing")
    return leaves, chain


def _check_extends(
    deployment: Deployment,
    connection: Connection,
    last: StoredCheckpoint,
    state: audit_log.AuditState,
) -> None:
    """Raise :class:`LogInconsistent` unless the database's tree extends ``last``."""
    size = state.next_seq
    if last.size > size:
        raise _inconsistent(
            deployment,
            f"the database's log has {size} entries, but a checkpoint signed outside it covers "
            f"{last.size}",
        )
    leaves, chain = _leaves_since(deployment, connection, last, size)
    tree = CompactRange(size, state.frontier)
    try:
        proof = consistency_proof(last.size, size, leaves, last.compact_range())
        verify_consistency(last.size, size, last.checkpoint.root, tree.root(), proof)
    except AuditIntegrityError:
        raise _inconsistent(
            deployment,
            f"the database's tree of size {size} is not consistent with the checkpoint of size "
            f"{last.size} signed outside it",
        ) from None
    if chain != state.head:
        raise _inconsistent(deployment, "the log's head does not match its last entry")


def check_extends(
    deployment: Deployment, connection: Connection
) -> tuple[audit_log.AuditState, StoredCheckpoint]:
    """Lock the log's head and check that the database's log extends the store's newest
    checkpoint; returns both. Raises as :func:`sign_pending` says."""
    state = audit_log.lock_state(connection)
    store = deployment.checkpoint_store(connection)
    last = store.latest()
    if last is None:
        raise deployment.store_error("it holds no checkpoint")
    if store.origin() != origin_of(connection):
        raise deployment.store_error("it is the store of another log (another origin)")
    _check_extends(deployment, connection, last, state)
    return state, last


def sign_pending(deployment: Deployment, *, now: datetime | None = None) -> StoredCheckpoint | None:
    """Sign a checkpoint over every committed entry that the store's newest does not cover, in
    a transaction of its own; returns it, or None if there was nothing to sign.

    Raises :class:`LogInconsistent` (and marks the deployment so) when the database's log does
    not extend the store's newest checkpoint, and :class:`~errors.CheckpointStoreError`
    when the store is missing, damaged or cannot be written (nothing is signed then either).
    """
    moment = now or datetime.now(UTC)
    with deployment.transaction(checkpoint=False) as connection:
        state, last = check_extends(deployment, connection)
        store = deployment.checkpoint_store(connection)
        signed: StoredCheckpoint | None = None
        if last.size == state.next_seq:  # signed already, by another process perhaps
            _record(connection, state, last)  # a crash may have left it unrecorded
        else:
            checkpoint = deployment.signer(connection).sign(
                tree_size=state.next_seq,
                root=CompactRange(state.next_seq, state.frontier).root(),
                chain=state.head,
                now=moment,
                origin=store.origin(),
            )
            store.append_checkpoint(checkpoint, state.frontier)
            signed = store.latest()
            assert signed is not None and signed.checkpoint == checkpoint
            _record(connection, state, signed)
    deployment.signed()  # every entry is under a checkpoint: this process's count starts again
    return signed


def _record(connection: Connection, state: audit_log.AuditState, stored: StoredCheckpoint) -> None:
    if audit_log.checkpoint_at(connection, size=stored.size) is None:
        audit_log.insert_checkpoint(connection, stored.checkpoint)
    if state.last_checkpoint < stored.size:
        state.last_checkpoint = stored.size
        audit_log.save_state(connection, state)


def adopt(deployment: Deployment, *, now: datetime) -> StoredCheckpoint:
    """Create the checkpoint store and sign the database's log as it is now into it: trust on
    first use, for ``tiers init`` only (a new deployment, or one upgraded from before the
    store existed). The store must not exist yet."""
    with deployment.transaction(checkpoint=False) as connection:
        state = audit_log.lock_state(connection)
        origin = origin_of(connection)
        store = deployment.checkpoint_store(connection)
        store.create(origin=origin, now=now)
        checkpoint = deployment.signer(connection).sign(
            tree_size=state.next_seq,
            root=CompactRange(state.next_seq, state.frontier).root(),
            chain=state.head if state.next_seq else GENESIS,
            now=now,
            origin=origin,
        )
        store.append_checkpoint(checkpoint, state.frontier)
        signed = store.latest()
        assert signed is not None
        _record(connection, state, signed)
    return signed
