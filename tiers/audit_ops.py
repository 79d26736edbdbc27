"""Auditor operations on the access log: read, verify, checkpoint, export, look up a customer,
report and purge. Each is itself recorded in the log."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row

from audit import (
    Action,
    Checkpoint,
    CompactRange,
    Counts,
    StoredEntry,
    Verification,
    consistency_proof,
    inclusion_proof,
    key_id,
    parse_entry,
    verify_log,
)
from audit.bundle import load_bundle, write_bundle
from audit.checkpoint import checkpoint_from_note, verify_checkpoint
from audit.entry import AuditEntry
from audit.merkle import verify_consistency
from audit.note import Note
from errors import AuditIntegrityError, InvalidRequest, NotFound, TiersError
from tiers import _checkpointing as checkpointing
from tiers import _subject_index as subject_index
from tiers import _witnessing as witnessing
from tiers import schemes
from tiers._csvio import atomic_output
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.cards import card_of
from tiers.deployment import Deployment
from tiers.identifiers import get_kind
from tiers.storage import audit_log
from tiers.storage import links as links_repo
from tiers.storage.checkpoint_store import StoredCheckpoint
from tiers.storage.domains import DomainRecord

__all__ = [
    "Proof",
    "PurgeResult",
    "export_log",
    "latest_note",
    "log_key",
    "lookup_subject",
    "prove",
    "purge_log",
    "read_checkpoints",
    "read_log",
    "sign_checkpoint",
    "verification_status",
    "verify_against",
    "verify_stored",
]


_FILTER = re.compile(r"[A-Za-z0-9:._@-]{1,128}")


@audited(Action.AUDIT_READ, domain_arg=None)
def read_log(
    deployment: Deployment,
    *,
    access: Access,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """The entries that match, oldest first."""
    require(access, Action.AUDIT_READ)
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("--until must be after --since", code="bad_period")
    for name, value in (("actor", actor), ("action", action)):
        if value is not None and not _FILTER.fullmatch(value):
            raise InvalidRequest(
                f"the {name} filter holds characters no {name} has", code="bad_filter"
            )
    with deployment.transaction() as connection:
        found = [
            parse_entry(data)
            for data in audit_log.query(
                connection, since=since, until=until, actor=actor, action=action
            )
        ]
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_READ,
            counts=Counts(records_out=len(found)),
            detail={k: v for k, v in (("actor", actor), ("action", action)) if v},
        )
    return found


def _checked(rows: Iterator[tuple[StoredEntry, Row[Any]]]) -> Iterator[StoredEntry]:
    """Pass entries on, first checking that the searchable columns say what the entry says."""
    for stored, row in rows:
        try:
            entry = parse_entry(stored.data)
        except AuditIntegrityError:
            yield stored  # verify_log names the fault
            continue
        columns = (row.time, row.actor, row.action, row.outcome, row.subject, row.other_subject)
        if columns != (
            entry.time,
            entry.actor[:128],
            entry.action[:64],
            entry.outcome,
            entry.subject,
            audit_log.other_subject_of(entry.detail),
        ):
            raise AuditIntegrityError(
                f"entry {stored.seq}: its searchable columns were altered",
                code="tampered",
                seq=stored.seq,
            )
        yield stored


def _counted(
    entries: Iterator[StoredEntry], progress: Callable[[int], None]
) -> Iterator[StoredEntry]:
    """``entries``, telling ``progress`` how many have passed, every thousand and at the end."""
    count = 0
    for count, entry in enumerate(entries, start=1):
        if count % 1000 == 0:
            progress(count)
        yield entry
    progress(count)


def _verify(
    deployment: Deployment,
    connection: Connection,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Verify the database's log on its own and against the checkpoint store outside it."""
    state = audit_log.lock_state(connection)
    public_key = deployment.signer(connection).public_key
    store = deployment.checkpoint_store(connection)
    outside = store.records()
    # A checkpoint is kept twice, in the database and in the store: each is checked, once.
    every = [*audit_log.checkpoints(connection), *(r.checkpoint for r in outside)]
    distinct = list({(c.tree_size, c.signature): c for c in every}.values())
    entries = _checked(audit_log.stored_entries(connection))
    result = verify_log(
        entries if progress is None else _counted(entries, progress),
        distinct,
        public_key,
        audit_log.purge_mark(connection, state),
    )
    _check_state(state, result)
    if state.purged:
        _check_purge(connection, state.purged, store.at(state.purged))
    latest = store.latest()
    unsigned = result.tree_size - (latest.size if latest else 0)
    notes = (
        f"{len(outside)} of them kept outside the database",
        f"{unsigned} newest entries not yet under one" if unsigned else "every entry under one",
        *witnessing.status(deployment, latest).notes(),
    )
    return replace(result, notes=notes)


def _check_state(state: audit_log.AuditState, result: Verification) -> None:
    """The state row (head, size, compact range) must say what the entries say."""
    if (
        state.next_seq != result.tree_size
        or state.head != result.head
        or CompactRange(state.next_seq, state.frontier).root() != result.root
    ):
        raise AuditIntegrityError(
            f"the log's state row does not match its {result.tree_size} entries",
            code="tampered",
            seq=result.tree_size,
        )


def _check_purge(connection: Connection, purged: int, mark: StoredCheckpoint | None) -> None:
    """A purge stands only where the store kept its signed mark (whose root verify_log checks
    against the purge record) and the log the entry of the purge that made it."""
    recorded = any(
        parse_entry(data).detail.get("through_seq") == purged - 1
        for data in audit_log.query(connection, action=Action.AUDIT_PURGE)
    )
    if mark is None or not mark.purge or not recorded:
        raise AuditIntegrityError(
            f"entries 0-{purged - 1} are marked purged, but no purge of them was signed outside "
            "the database and logged",
            code="tampered",
            seq=0,
        )


@audited(Action.AUDIT_VERIFY_AGAINST, domain_arg=None)
def verify_against(deployment: Deployment, *, access: Access, kept: bytes) -> Verification:
    """Verify the stored log, then prove it extends ``kept``: a checkpoint (signed note) or an
    export bundle that a party kept earlier, by an RFC 9162 consistency proof from its newest
    checkpoint to the log's current tree. Raises :class:`AuditIntegrityError` otherwise."""
    require(access, Action.AUDIT_VERIFY)
    result = verify_stored(deployment, access=access)
    with deployment.reading() as connection:
        public_key = deployment.signer(connection).public_key
        old = kept_checkpoint(kept, public_key)
        leaves, prefix = audit_log.tree_leaves(connection)
        try:
            nodes = consistency_proof(old.tree_size, result.tree_size, leaves, prefix)
            verify_consistency(old.tree_size, result.tree_size, old.root, result.root, nodes)
        except AuditIntegrityError:
            raise AuditIntegrityError(
                f"the log is not an extension of the kept checkpoint of size {old.tree_size}: "
                "it was rewritten or truncated since",
                code="tampered",
                seq=min(old.tree_size, result.tree_size),
            ) from None
    with deployment.transaction() as connection:
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_VERIFY_AGAINST,
            detail={"kept_size": old.tree_size, "tree_size": result.tree_size},
        )
    return replace(
        result, notes=(*result.notes, f"extends the kept checkpoint of size {old.tree_size}")
    )


@audited(Action.AUDIT_LOG_KEY, domain_arg=None)
def log_key(deployment: Deployment, *, access: Access) -> str:
    """The log's verifier key in C2SP vkey form (its name is the origin's)."""
    require(access, Action.AUDIT_READ)
    with deployment.transaction() as connection:
        key = deployment.signer(connection).verifier_key(audit_log.log_origin(connection))
        deployment.record(connection, access, action=Action.AUDIT_LOG_KEY)
    return key.encode()


def latest_note(deployment: Deployment, *, access: Access) -> str:
    """The newest checkpoint outside the database as a signed note, with its cosignatures. It
    holds only a size and hashes: any authenticated role may read it (the read is logged)."""
    with deployment.transaction() as connection:
        latest = deployment.checkpoint_store(connection).latest()
        public_key = deployment.signer(connection).public_key
        deployment.record(connection, access, action=Action.AUDIT_CHECKPOINT_READ)
    if latest is None:
        raise NotFound("no signed checkpoint yet", code="no_checkpoint")
    return latest.checkpoint.note(public_key, latest.cosignatures).encode()


def kept_checkpoint(kept: bytes, public_key: bytes) -> Checkpoint:
    """The newest checkpoint of a kept file: a signed note, or an export bundle."""
    text = kept.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        bundle = load_bundle(kept)
        if not bundle.checkpoints:
            raise AuditIntegrityError(
                "the kept export holds no checkpoint", code="kept_without_checkpoint"
            )
        newest = max(bundle.checkpoints, key=lambda c: c.tree_size)
        verify_checkpoint(newest, public_key)
        return newest
    return checkpoint_from_note(Note.parse(text), public_key)


@audited(Action.AUDIT_CHECKPOINTS, domain_arg=None)
def read_checkpoints(deployment: Deployment, *, access: Access) -> list[Checkpoint]:
    """Every signed checkpoint, oldest first, with the key that signed them."""
    require(access, Action.AUDIT_READ)
    with deployment.transaction() as connection:
        found = audit_log.checkpoints(connection)
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_CHECKPOINTS,
            counts=Counts(records_out=len(found)),
        )
    return found


@audited(Action.AUDIT_VERIFY, domain_arg=None)
def verify_stored(
    deployment: Deployment, *, access: Access, progress: Callable[[int], None] | None = None
) -> Verification:
    """Verify the stored log; raises :class:`AuditIntegrityError` naming the first bad entry.

    The verification and its own entry are two steps: the entry is appended after the log was
    found intact (or, through :func:`audited`, after it was found damaged).
    """
    require(access, Action.AUDIT_VERIFY)
    deployment.sign_pending()  # entries no checkpoint covers yet, if the log allows it
    deployment.witness_newest()
    with deployment.transaction() as connection:
        result = _verify(deployment, connection, progress)
        witnessed = witnessing.status(deployment, deployment.checkpoint_store(connection).latest())
    if witnessed.witnesses and not witnessed.reached:
        raise AuditIntegrityError(
            f"the witnesses did not cosign the newest checkpoint: {witnessed.notes()[0]}; a "
            "witness refuses a history that does not extend the one it cosigned before",
            code="unwitnessed",
        )
    with deployment.transaction() as connection:
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_VERIFY,
            counts=Counts(records_in=result.entries),
            detail={"tree_size": result.tree_size},
        )
    return result


def _checkpoint_now(deployment: Deployment) -> Checkpoint:
    """A checkpoint over every committed entry, signed into the store if none covers them all
    yet. Raises what :func:`tiers._checkpointing.sign_pending` raises."""
    checkpointing.sign_pending(deployment)
    with deployment.reading() as connection:
        latest = deployment.checkpoint_store(connection).latest()
    assert latest is not None  # sign_pending raises when the store holds none
    return latest.checkpoint


@audited(Action.AUDIT_CHECKPOINT, domain_arg=None)
def sign_checkpoint(deployment: Deployment, *, access: Access) -> Checkpoint:
    """Record the request, then sign a checkpoint covering every entry, that one included."""
    require(access, Action.AUDIT_CHECKPOINT)
    with deployment.transaction() as connection:
        deployment.record(connection, access, action=Action.AUDIT_CHECKPOINT)
    return _checkpoint_now(deployment)


@audited(Action.AUDIT_EXPORT, domain_arg=None)
def export_log(deployment: Deployment, *, access: Access, output: Path) -> str:
    """Write a self-contained bundle (entries, checkpoints, public key) atomically; returns the
    checkpoint key's fingerprint. The export's own entry is in the bundle, under a checkpoint
    signed for it, so that the bundle is verifiable up to its last entry."""
    require(access, Action.AUDIT_EXPORT)
    with deployment.transaction() as connection:
        deployment.record(connection, access, action=Action.AUDIT_EXPORT)
    _checkpoint_now(deployment)
    deployment.witness_newest()
    with atomic_output(output) as handle, deployment.reading() as connection:
        state = audit_log.lock_state(connection)
        signer = deployment.signer(connection)
        newest = deployment.checkpoint_store(connection).latest()
        assert newest is not None
        write_bundle(
            handle,
            public_key=signer.public_key,
            entries=(stored for stored, _ in audit_log.stored_entries(connection)),
            checkpoints=audit_log.checkpoints(connection),
            purge=audit_log.purge_mark(connection, state),
            exported_at=access.now,
            witnessed=newest.checkpoint.note(signer.public_key, newest.cosignatures).encode(),
        )
    return key_id(signer.public_key)


@audited(Action.AUDIT_SUBJECT)
def lookup_subject(
    deployment: Deployment, *, access: Access, domain: str, kind: str, value: str
) -> list[AuditEntry]:
    """Entries about one customer. The value (a clear identifier, or a pseudonym of ``domain``'s:
    the only way to a blind-only domain's customers) is turned into its subject in memory, then
    into its subject references (every live audit key version), and dropped; the look-up is
    itself logged with the customer's reference. Entries that name the customer are found by
    their columns; those about many customers at once (a batch, a file, an exchange, a
    campaign, a withdrawal) by the subject index (:mod:`tiers._subject_index`).

    A partner's card that is linked to other cards stands for an alliance customer, whose
    entries may name any of its cards (an association is recorded under the card presented
    at the desk, a hub resolution under the card behind the key): the entries about every
    card linked to it at the time of the look-up are returned too."""
    require(access, Action.AUDIT_SUBJECT)
    deployment.budget.admit(access, 1)
    identifier_kind = get_kind(kind)
    with deployment.transaction() as connection:
        record = deployment.domain(connection, domain)
        base = _subject_of(deployment, connection, record, identifier_kind.name, value)
        bases = _with_linked_cards(deployment, connection, record, kind, base)
        references = [ref for b in bases for ref in deployment.subject_references(connection, b)]
        named = audit_log.query(connection, subjects=references)
        indexed = audit_log.indexed_seqs(
            connection,
            subject_index.references(deployment, connection, bases),
            ref_bytes=subject_index.REF_BYTES,
        )
        by_seq = {e.seq: e for e in map(parse_entry, named)}
        wanted = [seq for seq in indexed if seq not in by_seq]
        by_seq.update(
            (e.seq, e) for e in map(parse_entry, audit_log.entries_at(connection, wanted))
        )
        found = [by_seq[seq] for seq in sorted(by_seq)]
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_SUBJECT,
            domains=[domain],
            counts=Counts(records_out=len(found)),
            subject=deployment.subject_reference(connection, base),
            detail={"linked_cards": len(bases) - 1},
        )
    return found


def _subject_of(
    deployment: Deployment, connection: Connection, record: DomainRecord, kind: str, value: str
) -> bytes:
    """The subject of a clear identifier of ``kind``, or of a pseudonym of ``record``'s (the
    only way into a blind-only domain's customers). Raises :class:`~errors.NotFound`
    (``unknown_pseudonym``) for a pseudonym with no subject (under ``hmac``, one the service
    never issued)."""
    scheme = schemes.pseudonymiser(deployment, connection)
    if value.startswith(f"{record.name}.v"):
        ring = deployment.domain_keyring(connection, record)
        (found,) = schemes.subjects_named(scheme, record, ring, [value])
        if isinstance(found, TiersError):
            raise found
        if found is None:
            raise NotFound("no subject has that pseudonym", code="unknown_pseudonym")
        return found
    normalised = get_kind(kind).normaliser(value, deployment.normalisation(record))
    (base,) = scheme.bases(kind, [normalised])
    return base


def _with_linked_cards(
    deployment: Deployment, connection: Connection, record: DomainRecord, kind: str, base: bytes
) -> list[bytes]:
    """``base``, then the base pseudonyms of the other cards linked to it when it is one of the
    partner's cards and belongs to an alliance customer."""
    if kind != "card" or record.role != "partner":
        return [base]
    card = card_of(deployment, connection, record, base)
    if card is None or card.customer_id is None:
        return [base]
    linked = links_repo.cards_of(connection, customer_id=card.customer_id)
    return list(dict.fromkeys([base, *(row.base for row in linked)]))


def verification_status(deployment: Deployment, connection: Connection) -> tuple[str, bool]:
    """The stored log's verification as one line, and whether it is intact (for a report or
    the console: a damaged log is shown, not raised)."""
    try:
        return _verify(deployment, connection).summary(), True
    except AuditIntegrityError as error:
        return f"AUDIT LOG DAMAGED: {error.message}", False


@dataclass(frozen=True, slots=True)
class PurgeResult:
    purged: int
    through_seq: int | None
    cutoff: datetime


@audited(Action.AUDIT_PURGE, domain_arg=None)
def purge_log(
    deployment: Deployment, *, access: Access, older_than_days: int | None = None
) -> PurgeResult:
    """Delete the entries older than the retention period (default ``audit_retention_days``).

    The log is verified first (a damaged log is never purged: that would erase the evidence). A
    signed checkpoint and compact range then stand for the purged prefix, so the rest still
    verifies. Only a prefix is purged: an older entry after a newer one is kept.
    """
    require(access, Action.AUDIT_PURGE)
    days = (
        older_than_days if older_than_days is not None else deployment.settings.audit_retention_days
    )
    if days < 1:
        raise InvalidRequest("the retention period is at least one day", code="bad_period")
    cutoff = access.now - timedelta(days=days)
    checkpointing.sign_pending(deployment)  # the store covers everything before anything goes
    with deployment.transaction() as connection:
        _verify(deployment, connection)
        state = audit_log.lock_state(connection)
        end = audit_log.last_seq_before(connection, cutoff=cutoff, first=state.purged)
        purged = 0
        if end is not None and end > state.purged:
            _purge_mark(deployment, connection, state, end, access.now)
            purged = audit_log.delete_before(connection, end=end)
            state.purged = end
            audit_log.save_state(connection, state)
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_PURGE,
            counts=Counts(records_in=purged),
            detail={"retention_days": days, "through_seq": (end - 1) if purged and end else -1},
        )
    return PurgeResult(purged, (end - 1) if purged and end else None, cutoff)


def _purge_mark(
    deployment: Deployment,
    connection: Connection,
    state: audit_log.AuditState,
    end: int,
    now: datetime,
) -> None:
    """Sign the tree of the first ``end`` entries, the stand-in for them once purged, into the
    store (as a purge mark) and the database; ``state`` gets its compact range."""
    tree = CompactRange(state.purged, state.purge_frontier or [])
    chain = state.head
    for stored, _ in audit_log.stored_entries(connection):
        if stored.seq >= end:
            break
        tree.append(stored.hash)
        chain = stored.hash.hex()
    store = deployment.checkpoint_store(connection)
    mark = deployment.signer(connection).sign(
        tree_size=end, root=tree.root(), chain=chain, now=now, origin=store.origin()
    )
    store.append_checkpoint(mark, tree.nodes, purge=True)
    if audit_log.checkpoint_at(connection, size=end) is None:
        audit_log.insert_checkpoint(connection, mark)
    state.purge_frontier = tree.nodes
    state.last_checkpoint = max(state.last_checkpoint, end)


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof an auditor checks offline against signed checkpoints (see :mod:`audit.merkle`)."""

    kind: str
    nodes: list[bytes]
    checkpoints: list[Checkpoint]
    seq: int | None = None
    entry: bytes | None = None
    leaf: bytes | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "seq": self.seq,
            "entry": None if self.entry is None else self.entry.decode("ascii"),
            "leaf_hash": None if self.leaf is None else self.leaf.hex(),
            "proof": [node.hex() for node in self.nodes],
            "checkpoints": [c.as_dict() for c in self.checkpoints],
        }


def _signed(connection: Connection, size: int) -> Checkpoint:
    for checkpoint in audit_log.checkpoints(connection):
        if checkpoint.tree_size == size:
            return checkpoint
    raise NotFound(f"no signed checkpoint at size {size}", code="no_checkpoint")


@audited(Action.AUDIT_PROOF, domain_arg=None)
def prove(
    deployment: Deployment,
    *,
    access: Access,
    seq: int | None = None,
    old_size: int | None = None,
    new_size: int | None = None,
) -> Proof:
    """An inclusion proof of entry ``seq`` in the latest checkpoint (or ``new_size``'s), or a
    consistency proof from checkpoint ``old_size`` to ``new_size``; both are small (log n
    hashes) and verify against the signed checkpoints without the rest of the log."""
    require(access, Action.AUDIT_PROOF)
    with deployment.transaction() as connection:
        leaves, prefix = audit_log.tree_leaves(connection)
        base = prefix.size if prefix else 0
        checkpoints = audit_log.checkpoints(connection)
        if not checkpoints:
            raise NotFound(
                "no signed checkpoint yet: run `tiers audit checkpoint`", code="no_checkpoint"
            )
        target = _signed(connection, new_size) if new_size else checkpoints[-1]
        if seq is not None:
            if not base <= seq < target.tree_size:
                raise NotFound(
                    f"entry {seq} is not under the checkpoint of size {target.tree_size}",
                    code="no_entry",
                )
            nodes = inclusion_proof(seq, target.tree_size, leaves, prefix)
            data = audit_log.entry_at(connection, seq=seq)
            proof = Proof("inclusion", nodes, [target], seq, data, leaves[seq - base])
        elif old_size is not None:
            old = _signed(connection, old_size)
            nodes = consistency_proof(old.tree_size, target.tree_size, leaves, prefix)
            proof = Proof("consistency", nodes, [old, target])
        else:
            raise InvalidRequest("ask for --seq or --from-size", code="bad_proof_request")
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_PROOF,
            detail={"kind": proof.kind, "tree_size": target.tree_size},
        )
    return proof
