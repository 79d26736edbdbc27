"""A running `tiers` deployment: its settings, database engine and master key."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from audit import Action, AuditEntry, CheckpointSigner, Counts
from errors import (
    UNKNOWN_DOMAIN,
    AuditUnavailable,
    CheckpointStoreError,
    DatabaseUnavailable,
    Forbidden,
    KeyUnavailable,
    NotFound,
    NotInitialised,
    TiersError,
)
from keys import KeyEncryptionKey, Keyring
from keys.rows import RowSealer
from tiers import _checkpointing as checkpointing
from tiers import _keyrings as keyrings
from tiers import _witnessing as witnessing
from tiers import auditing, schemes, sealing, storage
from tiers.auditing import AUDIT_DOMAIN, Access
from tiers.buckets import Buckets, DatabaseBuckets, MemoryBuckets
from tiers.budgets import IdentifierBudget
from tiers.filestore import FileStore, store_for
from tiers.identifiers import NormalisationOptions
from tiers.pseudonyms import DOMAIN_NAME, domain_pseudonym
from tiers.settings import Settings
from tiers.storage import SQLITE_BUSY_MS, audit_log, check_schema, domains, keystore, make_engine
from tiers.storage import meta as meta_repo
from tiers.storage.checkpoint_store import CheckpointStore, StoredCheckpoint
from tiers.storage.domains import DomainRecord

__all__ = ["MASTER_CHECK", "Deployment", "unknown_domain"]

MASTER_CHECK = "master_key_check"


def unknown_domain() -> NotFound:
    """The one answer for a domain that does not exist, and for one a caller may not name in
    that place (so that the answer does not tell which): the same for every name."""
    return NotFound(UNKNOWN_DOMAIN, code="unknown_domain")


@dataclass(slots=True)
class _Kept:
    """What a process keeps between transactions, all read under one key generation."""

    generation: str
    keyrings: dict[tuple[str, str], Keyring] = field(default_factory=dict, repr=False)
    domains: dict[str, DomainRecord] = field(default_factory=dict)
    hub: DomainRecord | None = None
    hub_read: bool = False  # set after hub: a thread that sees it True sees the hub
    signer: CheckpointSigner | None = field(default=None, repr=False)


@dataclass(slots=True)
class Deployment:
    """What every core operation runs against. Open with :meth:`open`, close when done."""

    settings: Settings
    engine: Engine
    master: KeyEncryptionKey
    # SQLite has one writer at a time and every transaction writes (BEGIN IMMEDIATE). Threads
    # of this process queue here, in order, rather than in SQLite's busy handler, which sleeps
    # in growing steps and gave a service under load latencies of a second.
    _writer: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Unwrapped keyrings and domain records, kept under one key generation (see :meth:`_kept`).
    _kept_now: _Kept | None = field(default=None, repr=False)
    # Why the log cannot be written now (tiers._checkpointing): every record() raises it. A
    # store that failed clears when a checkpoint is signed again; an inconsistent log never
    # does in this process.
    log_fault: AuditUnavailable | None = None
    # Entries this process appended since it last signed (a checkpoint every N of them).
    _unsigned: int = 0
    _store: CheckpointStore | None = field(default=None, repr=False)
    _files: FileStore | None = field(default=None, repr=False)
    _sealer: tuple[KeyEncryptionKey, RowSealer] | None = field(default=None, repr=False)
    _scheme: str | None = field(default=None, repr=False)
    # The size each witness (by URL) last cosigned, as far as this process knows.
    witness_sizes: dict[str, int] = field(default_factory=dict)
    # Called instead of signing when a transaction brings the count of unsigned entries to
    # ``audit_checkpoint_every``: a service sets it to wake its checkpoint thread, so that no
    # request waits on a signature and an fsync. None: sign in the committing thread.
    checkpoint_due: Callable[[], None] | None = field(default=None, repr=False)
    # Told of every entry this process records (a service's metrics count them: identifiers
    # processed by action, refusals by code). It must be quick and must not raise.
    observer: Callable[[AuditEntry], None] | None = field(default=None, repr=False)
    # The identifiers each API client may still submit (tiers.budgets).
    budget: IdentifierBudget = field(init=False, repr=False)

    # The levels of the clients' rate and budget buckets: this process's on SQLite, the
    # database's (every node's) on PostgreSQL.
    limits: Buckets = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.limits = MemoryBuckets() if self.embedded else DatabaseBuckets(self.engine)
        self.budget = IdentifierBudget(
            per_second=self.settings.budget_identifiers_per_second,
            per_hour=self.settings.budget_identifiers_per_hour,
            buckets=self.limits,
        )

    @classmethod
    def open(cls, settings: Settings, *, reader: bool = False) -> Deployment:
        """Open an initialised deployment.

        Raises :class:`NotInitialised` (no schema, no master key check value),
        :class:`KeyUnavailable` (the master key is missing or is not this database's) and
        :class:`~errors.ConfigurationError` (bad witness settings among others). A
        checkpoint is signed over what no checkpoint covers yet; a log that cannot be signed
        leaves the deployment open with :attr:`log_fault` set (its writes are refused). Not for a
        ``reader``, a helper that only reads (a Spark executor): it signs nothing, and its
        transactions never wait for SQLite's write lock, held by the process it works for.
        """
        master = settings.load_master_key()
        witnessing.configured(settings)  # refuse bad witness settings before anything runs
        engine = make_engine(settings.resolved_database_url())
        if reader:
            engine = engine.execution_options(tiers_read_only=True)
        try:
            check_schema(engine)
            with engine.connect() as connection:
                check = meta_repo.get(connection, name=MASTER_CHECK)
            if check is None:
                raise NotInitialised("the database has no master key check value; run `tiers init`")
            if not master.matches(check):
                raise KeyUnavailable(
                    f"the master key from {master.source} is not the one this database was "
                    "initialised with",
                    code="wrong_master_key",
                )
        except BaseException:
            engine.dispose()
            raise
        deployment = cls(settings, engine, master)
        deployment.scheme  # noqa: B018 - read before any transaction of the deployment's
        if not reader:
            deployment.sign_pending()  # reconciles what a crash left, or finds the log faulty
        return deployment

    def sign_pending(self) -> StoredCheckpoint | None:
        """Sign what no checkpoint covers yet; a failure is kept in :attr:`log_fault` (and
        reported loudly) instead of raised, for callers whose own work is already done."""
        try:
            return checkpointing.sign_pending(self)
        except AuditUnavailable as error:
            self.log_fault = error
        except TiersError as error:  # the signing key itself is unavailable or tampered with
            self.log_fault = AuditUnavailable(
                f"no checkpoint can be signed: {error.message}", code=error.code
            )
        return None

    def witness_newest(self) -> list[witnessing.Submission]:
        """Send the store's newest checkpoint to the witnesses that have not cosigned it.
        Outside any transaction: it waits on the network."""
        if not self.settings.witnesses.strip() or self.log_fault is not None:
            return []
        with self.reading() as connection:
            latest = self.checkpoint_store(connection).latest()
        return [] if latest is None else witnessing.submit(self, latest)

    def witness_status(self) -> witnessing.WitnessStatus:
        """Whether the witnesses' quorum cosigned the store's newest checkpoint."""
        with self.reading() as connection:
            latest = self.checkpoint_store(connection).latest()
        return witnessing.status(self, latest)

    def due_for_checkpoint(self) -> bool:
        """Whether some committed entry is not under a checkpoint (one cheap read, no lock)."""
        with self.engine.connect() as connection:
            next_seq, last = audit_log.peek_state(connection)
        return next_seq > last

    def sealer(self) -> RowSealer:
        """The seals of rows of power under the current master key (kept while it is)."""
        sealer = self._sealer
        if sealer is None or sealer[0] is not self.master:
            sealer = (self.master, RowSealer(self.master))
            self._sealer = sealer
        return sealer[1]

    def checkpoint_store(self, connection: Connection) -> CheckpointStore:
        """The store of signed checkpoints outside the database, read with the log's key."""
        if self._store is None:
            self._store = CheckpointStore(
                self.settings.checkpoint_directory, self.signer(connection).public_key
            )
        return self._store

    def store_error(self, message: str) -> CheckpointStoreError:
        error = CheckpointStoreError(
            f"the checkpoint store is damaged: {message}", code="checkpoint_store_damaged"
        )
        self.log_fault = error
        return error

    def signed(self) -> None:
        """Note that this process signed a checkpoint; a store that had failed works again."""
        self._unsigned = 0
        if isinstance(self.log_fault, CheckpointStoreError):
            self.log_fault = None

    def _writable_log(self) -> None:
        if self.log_fault is not None:
            raise type(self.log_fault)(self.log_fault.message, code=self.log_fault.code)

    @classmethod
    def open_for(cls, settings: Settings, access: Access, *, action: Action) -> Deployment:
        """:meth:`open`, recording a refusal in the access log when the database is there but
        the deployment cannot be opened (a wrong master key, say)."""
        try:
            return cls.open(settings)
        except TiersError as error:
            try:
                engine = make_engine(settings.resolved_database_url())
            except TiersError:
                raise error from None
            try:
                check_schema(engine)
                auditing.record_failure(engine, access, action=action, error=error)
            except TiersError:
                pass
            finally:
                engine.dispose()
            raise

    def check_ready(self) -> None:
        """Raise unless the master key can be used (a token that went away), the database
        answers and the keys can be unwrapped."""
        self.master.check_available()
        try:
            with self.engine.connect() as connection:
                self.base_keyring(connection)
                self.signer(connection)
        except SQLAlchemyError:
            raise DatabaseUnavailable("the database does not answer") from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self, *, checkpoint: bool = True) -> Iterator[Connection]:
        """A write transaction. Once it is committed, a checkpoint is signed if this process
        has appended ``audit_checkpoint_every`` entries since its last (``checkpoint``)."""
        if not self.embedded:
            with self.engine.begin() as connection:
                yield connection
        else:
            with self._writer, self.engine.begin() as connection:
                yield connection
        if checkpoint and self._unsigned >= self.settings.audit_checkpoint_every:
            if self.checkpoint_due is not None:
                self.checkpoint_due()
            else:
                self.sign_pending()

    @property
    def files(self) -> FileStore:
        """Where job outputs and inbox deliveries live (:mod:`tiers.filestore`)."""
        if self._files is None:
            self._files = store_for(self.settings.home, self.engine, embedded=self.embedded)
        return self._files

    @property
    def embedded(self) -> bool:
        """The database is a file of this machine (SQLite), not a server."""
        return storage.embedded(self.engine)

    @contextmanager
    def writer_if_free(self) -> Iterator[bool]:
        """On SQLite, hold this process's write turn if, at this instant, no thread of this
        process and no other process is writing; yields whether it is held (always False on
        PostgreSQL). Held, a short call can run on the service's event loop without waiting
        on a lock: the lock of another process is tried with no wait, and released at once."""
        if not self.embedded or not self._writer.acquire(blocking=False):
            yield False
            return
        try:
            yield self._sqlite_write_lock_free()
        finally:
            self._writer.release()

    def _sqlite_write_lock_free(self) -> bool:
        # On the driver's connection: SQLAlchemy's own begin and reset cost as much as the try.
        connection = self.engine.raw_connection()
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=0")
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # "database is locked": another process writes
                return False
            cursor.execute("ROLLBACK")
            return True
        finally:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cursor.close()
            connection.close()  # back to the pool

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction, for reads that record nothing (authentication): on SQLite
        it does not take the write lock, so it never waits for a writer."""
        with self.engine.connect() as connection:
            connection.execution_options(tiers_read_only=True)
            with connection.begin():
                yield connection

    def _kept(self, connection: Connection) -> _Kept | None:
        """What this process keeps for the key generation ``connection``'s transaction reads.

        Keyrings and domain records are kept while the database's key generation is the one
        they were read under: it is read once per transaction, and triggers replace it on any
        change to the keys or the domains, so nothing kept is older than the generation it is
        kept under, and a version rotated or destroyed by any process is seen by the next
        transaction that starts after the change is committed. When the generation moves,
        everything kept under the old one is dropped at once, not entry by entry: a destroyed
        key's material is not left in memory for a keyring no request asks for again. None
        (nothing kept) if the generation row is missing.
        """
        generation = keystore.generation(connection)
        if generation is None:
            return None
        kept = self._kept_now  # one read: another thread may replace it meanwhile
        if kept is None or kept.generation != generation:
            kept = _Kept(generation)
            self._kept_now = kept
        return kept

    def domain(self, connection: Connection, name: str) -> DomainRecord:
        """The domain called ``name``, kept as :meth:`_kept` says; raises :class:`NotFound`
        (a name that is not there is asked again each time) and :class:`~errors.RowTampered`
        (its row fails its seal: :mod:`tiers.sealing`)."""
        kept = self._kept(connection)
        record = None if kept is None else kept.domains.get(name)
        if record is not None:
            return record
        # A malformed name cannot exist: answered without asking the database.
        record = domains.get(connection, name=name) if DOMAIN_NAME.fullmatch(name) else None
        if record is None:
            raise unknown_domain()
        sealing.check_domain(connection, self.sealer(), record)
        if kept is not None:
            kept.domains[name] = record
        return record

    def hub_domain(self, connection: Connection) -> DomainRecord | None:
        """The hub's domain, or None while the coalition has none; kept as :meth:`_kept`."""
        kept = self._kept(connection)
        if kept is not None and kept.hub_read:
            return kept.hub
        hub = domains.first_with_role(connection, role="hub")
        if hub is not None:
            sealing.check_domain(connection, self.sealer(), hub)
        if kept is not None:
            kept.hub, kept.hub_read = hub, True
        return hub

    def keyring(self, connection: Connection, *, owner: str, purpose: str) -> Keyring:
        """``owner``'s ``purpose`` keyring as ``connection`` sees it: unwrapped once, and kept
        as :meth:`_kept` says."""
        kept = self._kept(connection)
        ring = None if kept is None else kept.keyrings.get((owner, purpose))
        if ring is not None:
            return ring
        ring = keyrings.load_keyring(connection, self.master, owner=owner, purpose=purpose)
        if kept is not None:
            kept.keyrings[owner, purpose] = ring
        return ring

    @property
    def scheme(self) -> str:
        """The pseudonym scheme (:mod:`tiers.schemes`), read once: ``hmac`` or ``oprf``; a
        deployment initialised before schemes existed runs ``hmac``."""
        if self._scheme is None:
            with self.reading() as connection:  # never waits on this thread's own write
                stored = meta_repo.get(connection, name=schemes.META_SCHEME)
            self._scheme = schemes.check_scheme(stored or schemes.HMAC)
        return self._scheme

    def base_keyring(self, connection: Connection) -> Keyring:
        return self.keyring(connection, owner=keyrings.SERVICE_OWNER, purpose=keyrings.BASE_PURPOSE)

    def domain_keyring(self, connection: Connection, domain: DomainRecord) -> Keyring:
        return self.keyring(connection, owner=domain.name, purpose=keyrings.PSEUDONYM_PURPOSE)

    def normalisation(self, domain: DomainRecord) -> NormalisationOptions:
        """How ``domain``'s clear identifiers are normalised: every path by which a clear
        identifier enters asks this first, so a blind-only domain refuses them all here
        (:class:`Forbidden`, ``blind_only``)."""
        if domain.blind_only:
            raise Forbidden(
                "the domain takes blinded identifiers only (blind mode): send no clear one",
                code="blind_only",
            )
        return self.published_normalisation(domain)

    def published_normalisation(self, domain: DomainRecord) -> NormalisationOptions:
        """The same switches, as published to the partners that blind (never refused)."""
        return NormalisationOptions(
            card_luhn=domain.card_luhn, phone_region=self.settings.phone_region
        )

    def signer(self, connection: Connection) -> CheckpointSigner:
        """The checkpoint signing key: unwrapped once, and kept as :meth:`_kept` says."""
        kept = self._kept(connection)
        if kept is not None and kept.signer is not None:
            return kept.signer
        ring = self.keyring(
            connection, owner=keyrings.SERVICE_OWNER, purpose=keyrings.SIGNING_PURPOSE
        )
        signer = CheckpointSigner(ring.active.secret.reveal())
        if kept is not None:
            kept.signer = signer
        return signer

    def audit_keyring(self, connection: Connection) -> Keyring:
        return self.keyring(connection, owner=AUDIT_DOMAIN, purpose=keyrings.PSEUDONYM_PURPOSE)

    def subject_reference(self, connection: Connection, base: bytes) -> str:
        """The audit log's name for a customer: ``HMAC(K_audit, B)`` as an audit pseudonym."""
        return str(domain_pseudonym(self.audit_keyring(connection).active, AUDIT_DOMAIN, base))

    def subject_references(self, connection: Connection, base: bytes) -> list[str]:
        """The customer's reference under every live audit key version (for look-ups)."""
        ring = self.audit_keyring(connection)
        return [
            str(domain_pseudonym(ring.key(v.version), AUDIT_DOMAIN, base))
            for v in ring
            if v.state.value != "destroyed"
        ]

    def record(
        self,
        connection: Connection,
        access: Access,
        *,
        action: Action,
        domains: Sequence[str] = (),
        counts: Counts | None = None,
        subject: str | None = None,
        detail: Mapping[str, str | int] | None = None,
        outcome: str = "ok",
        code: str | None = None,
    ) -> AuditEntry:
        """Record an operation in the caller's transaction (see tiers.auditing)."""
        self._writable_log()
        self._unsigned += 1
        entry = auditing.record(
            connection,
            access,
            action=action,
            domains=domains,
            counts=counts,
            subject=subject,
            detail=detail,
            outcome=outcome,
            code=code,
        )
        if self.observer is not None:
            self.observer(entry)
        return entry

    def record_many(
        self, connection: Connection, pending: Sequence[auditing.Pending]
    ) -> list[AuditEntry]:
        """Record several operations in the caller's transaction, in order."""
        self._writable_log()
        self._unsigned += len(pending)
        entries = auditing.record_many(connection, pending)
        if self.observer is not None:
            for entry in entries:
                self.observer(entry)
        return entries
