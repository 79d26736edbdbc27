"""The database schema (SQLAlchemy Core tables). No clear identifier has a column here."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "attachments",
    "audit_checkpoints",
    "audit_entries",
    "audit_state",
    "audit_subjects",
    "cards",
    "client_requests",
    "clients",
    "customers",
    "deliveries",
    "domains",
    "hub_keys",
    "job_nodes",
    "job_parts",
    "jobs",
    "key_generation",
    "keys",
    "limit_buckets",
    "link_lock",
    "meta",
    "metadata",
    "policies",
    "pseudonym_index",
    "stored_files",
    "subjects",
    "withdrawn",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, stored as naive UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("card_luhn", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Blind mode only: the service refuses the domain's identifiers in clear (migration 0020).
    Column("blind_only", Boolean, nullable=False, default=False, server_default=false()),
    # hmac-sha256 seal of the row and the deployment's scheme (tiers.sealing, migration 0021);
    # NULL only in a database made before it, until `tiers init`.
    Column("seal", String(80), nullable=True),
)

keys = Table(
    "keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(32), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    # AES-256-GCM wrapped material; NULL once destroyed.
    Column("wrapped", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("state_changed_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner", "purpose", "version"),
)

# One row per keyring: the seal of its versions and their states (tiers.sealing, migration 0013).
keyring_seals = Table(
    "keyring_seals",
    metadata,
    Column("owner", String(32), primary_key=True),
    Column("purpose", String(16), primary_key=True),
    Column("seal", String(80), nullable=False),
)

# One row: a random token that database triggers replace whenever a row of `keys` or of
# `domains` is inserted, updated or deleted, by any code or by hand. A process may keep
# unwrapped keyrings and domain records while the token it read them under is still the
# current one (see Deployment.keyring and Deployment.domain). Not backed up.
key_generation = Table(
    "key_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("token", String(36), nullable=False),
)

# One row per customer identifier ever registered: the base pseudonym B and nothing else.
subjects = Table(
    "subjects",
    metadata,
    Column("base", LargeBinary(32), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    # SQLite: one b-tree, by key, rather than rows by rowid beside an index (migration 0011).
    sqlite_with_rowid=False,
)

# Reverse look-up: (domain, key version, pseudonym value) -> subject. The primary key gives the
# O(log n) look-up, and the order in which a rotation walks a version (no index by subject:
# every registration would pay for it, and nothing else reads by subject). No foreign keys
# either (migration 0010): the database checked each new entry against the subject and the
# domain it names, which cost registering loads a third of their time; every writer registers
# the subject first, in the same transaction, and neither subjects nor domains are deleted.
pseudonym_index = Table(
    "pseudonym_index",
    metadata,
    Column("domain_id", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("value", LargeBinary(20), primary_key=True),
    Column("subject", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,  # as the subjects
)

# The access log. `entry` is the canonical serialisation (what is hashed and signed); the other
# columns repeat some of its fields for searching, and verification checks that they agree.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", UTCDateTime, nullable=False, index=True),
    Column("actor", String(128), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("subject", String(64), nullable=True, index=True),
    # The other customer an entry names (detail.other_subject: the other card of an
    # association), so that a subject look-up finds the entry from either side (0009).
    Column("other_subject", String(64), nullable=True, index=True),
    Column("entry", Text, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("chain", String(64), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("key", String(32), nullable=False),
    # The log's origin line; NULL for checkpoints signed before origins were per deployment
    # (audit.checkpoint.ORIGIN). Migration 0012.
    Column("origin", String(128), nullable=True),
)

# One row (id 1): the head of the log, locked by every append so that entries are chained in
# one order across processes; the compact range of all entries (for O(log n) checkpoints); and,
# after a purge, the checkpoint size and compact range that stand for the purged entries.
audit_state = Table(
    "audit_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("next_seq", BigInteger, nullable=False),
    Column("head", String(64), nullable=False),
    Column("frontier", Text, nullable=False),
    Column("last_checkpoint", BigInteger, nullable=False),
    Column("purged", BigInteger, nullable=False),
    Column("purge_frontier", Text, nullable=True),
)

# API clients. Only an Argon2id hash of the API key is kept; `key_prefix` (public, random) finds
# the row, `credential_version` changes on every key rotation and revocation so that cached
# verifications die with them.
clients = Table(
    "clients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("domain", String(32), nullable=True),
    Column("key_prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(256), nullable=False),
    Column("credential_version", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    # hmac-sha256 seal of the row's powers under a key derived from the master key
    # (tiers.sealing); NULL only in a database made before migration 0013, until `tiers init`.
    Column("seal", String(80), nullable=True),
)

# Who each entry was about, for entries about many customers at once (a batch, a file, an
# exchange, a campaign, a withdrawal's every card): a 64-bit keyed reference of each customer
# (BLAKE2b under a key derived from the audit key), grouped by their first bits, as many as the
# entry's size needs (``bucket`` = ``(1 << bits) | prefix``, migration 0016), into one sorted
# array per entry and bucket (``refs``). Kept with the log and purged with it
# (tiers._subject_index).
audit_subjects = Table(
    "audit_subjects",
    metadata,
    Column("bucket", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("refs", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

# Requests of an admin client of the API for a client (``add``) or a new key (``rotate``),
# until a second admin decides (tiers.approvals). ``seal``: as the clients' own (tiers.sealing).
client_requests = Table(
    "client_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("domain", String(32), nullable=True),
    Column("requested_by", String(32), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("seal", String(80), nullable=False),
)

# Sessions of the console (api/console/): a browser's cookie holds a random token, the row its
# SHA-256 only; a session belongs to an auditor or admin client and ends with its key.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("client_id", Integer, ForeignKey("clients.id"), nullable=False, index=True),
    Column("credential_version", Integer, nullable=False),
    Column("purpose", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    # sealed like the clients (tiers.sealing): a database writer cannot forge a session
    Column("seal", String(80), nullable=False),
)

# File jobs. Outputs live under $TIERS_HOME/jobs/<id>/; the uploaded file itself is never stored.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("client_id", Integer, ForeignKey("clients.id"), nullable=False),
    Column("domain", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("rows_in", BigInteger, nullable=False),
    Column("rows_out", BigInteger, nullable=False),
    Column("rows_rejected", BigInteger, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)

# Card links. A card is one partner's card: `ref` is its internal identity, HMAC(K_base,
# "card-at" | partner | B), so that the same number at two partners is two cards.
cards = Table(
    "cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", LargeBinary(32), nullable=False, unique=True),
    # No foreign keys to the partner's domain and the subject: see the pseudonym index.
    Column("partner_id", Integer, nullable=False),
    Column("base", LargeBinary(32), nullable=False),  # its subject
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=True, index=True),
    Column("linked_at", UTCDateTime, nullable=True),
    # No unique key on (partner_id, base) since migration 0010: `ref`, a keyed hash of that pair
    # under the base key (which never changes), is unique, and the second index cost each card
    # an insert in random order.
)

# Alliance customers: two or more linked cards, attached to exactly one management company.
customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("base", LargeBinary(32), nullable=False, unique=True),  # random; its hub key's base
    Column("attached_to", Integer, ForeignKey("domains.id"), nullable=False),
    Column("attaching_card", Integer, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("policy_version", String(80), nullable=False),
    Column("attached_at", UTCDateTime, nullable=False),
    Column("last_transfer_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Every attachment decision, kept after the customer is dissolved (who, when, which rule).
attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", Integer, nullable=False, index=True),
    Column("partner_id", Integer, ForeignKey("domains.id"), nullable=True),
    Column("card_id", Integer, nullable=True),
    Column("rule", String(64), nullable=False),
    Column("policy_version", String(80), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
)

# Hub linking keys: (key version, value) -> a card's or a customer's internal reference.
hub_keys = Table(
    "hub_keys",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("value", LargeBinary(20), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("ref", LargeBinary(32), nullable=False, index=True),
)

# Attachment policy versions (the file's SHA-256) and which one is in force.
policies = Table(
    "policies",
    metadata,
    Column("version", String(80), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("content", Text, nullable=False),
    Column("applied_at", UTCDateTime, nullable=True),
    Column("active", Boolean, nullable=False),
)

# One row: locked by every change to links, so that concurrent requests apply one at a time.
link_lock = Table(
    "link_lock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("changes", BigInteger, nullable=False),
)

# Inbox deliveries: files under $TIERS_HOME/inbox/<id>.csv, listed here only once complete.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("recipient_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("sender", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acked_at", UTCDateTime, nullable=True),
)

# Files every node may serve (PostgreSQL): job outputs and inbox deliveries, in chunks. On
# SQLite they are files of the home instead (tiers.filestore).
stored_files = Table(
    "stored_files",
    metadata,
    Column("name", String(96), primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# The node that runs a file job, the job's key for parts that reach another node (wrapped under
# the master key), and the last part, once another node was asked to complete it (tiers.relay).
job_nodes = Table(
    "job_nodes",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id"), primary_key=True),
    Column("node", String(128), nullable=False),
    Column("part_key", Text, nullable=False),
    Column("complete_parts", Integer, nullable=True),
)

# Parts of an upload that reached a node other than the job's: encrypted under the job's key
# until the job's node applies them, then only their digest (to recognise a part sent again).
job_parts = Table(
    "job_parts",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=True),
)

# Request rates and identifier budgets shared by every process (PostgreSQL): two levels and
# when they were last computed (seconds since the epoch); the key is a digest.
limit_buckets = Table(
    "limit_buckets",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("first", Float, nullable=False),
    Column("second", Float, nullable=False),
    Column("at", Float, nullable=False),
)

# Cards and customers that left the alliance: their hub keys are never issued again.
withdrawn = Table(
    "withdrawn",
    metadata,
    Column("ref", LargeBinary(32), primary_key=True),
    Column("withdrawn_at", UTCDateTime, nullable=False),
)

# What the executors of a Spark job registered (tiers.spark): a subject and its entry in the
# index of the job's domain and key version, with its kind (a card is enrolled), until the job's
# driver moves them into ``subjects`` and ``pseudonym_index`` in the transaction of the job's
# access-log entry, or drops them when the job fails. No clear value: the same pseudonyms as
# the index holds.
staged_subjects = Table(
    "staged_subjects",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("base", LargeBinary(32), primary_key=True),
    Column("domain_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("value", LargeBinary(20), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)
