"""Operator operations: initialise a home, manage domains and their keys.

Each function is the one core implementation that the CLI (and the API) calls, and each records
exactly one access-log entry.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from audit import ORIGIN, Action, Counts
from errors import (
    AlreadyExists,
    ConfigurationError,
    InvalidRequest,
    KeyStateError,
    KeyUnavailable,
    NotFound,
    NotInitialised,
)
from keys import DomainKey, KeyEncryptionKey, KeyVersion, write_development_key
from keys.rows import RowSealer
from policy import load_policy
from tiers import _checkpointing as checkpointing
from tiers import _keyrings as keyrings
from tiers import schemes, sealing
from tiers.auditing import AUDIT_DOMAIN, Access, audited
from tiers.authorisation import require
from tiers.deployment import MASTER_CHECK, Deployment
from tiers.links import backfill_hub_keys
from tiers.policies import default_policy
from tiers.pseudonyms import DOMAIN_NAME
from tiers.rekey import drop_hub_version, rekey_hub, translation
from tiers.settings import Settings
from tiers.storage import (
    audit_log,
    bulk_load,
    domains,
    keystore,
    make_engine,
    migrate,
    scrub_deleted,
    sorted_inserts,
    staged,
    subjects,
)
from tiers.storage import links as links_repo
from tiers.storage import meta as meta_repo
from tiers.storage.domains import DomainRecord

__all__ = [
    "DomainRecord",
    "InitReport",
    "KeyDestruction",
    "KeyRotation",
    "add_domain",
    "destroy_key",
    "initialise",
    "list_domains",
    "list_keys",
    "retire_key",
    "rotate_key",
]

ROLES = ("partner", "hub", "audit")


@dataclass(frozen=True, slots=True)
class InitReport:
    home: str
    database: str
    master_key_source: str
    generated_development_key: bool
    development_key: bool
    created: tuple[str, ...]
    scheme: str = schemes.HMAC


def _ensure_keyring(
    connection: Connection, master: KeyEncryptionKey, *, owner: str, purpose: str, access: Access
) -> bool:
    try:
        keyrings.load_keyring(connection, master, owner=owner, purpose=purpose)
    except (NotFound, NotInitialised):
        keyrings.create_keyring(connection, master, owner=owner, purpose=purpose, now=access.now)
        return True
    return False


def _ensure_audit_domain(connection: Connection, master: KeyEncryptionKey, access: Access) -> bool:
    existing = domains.get(connection, name=AUDIT_DOMAIN)
    if existing is not None and existing.role != "audit":
        raise ConfigurationError(
            f"domain {AUDIT_DOMAIN!r} exists with role {existing.role}; it is reserved for the "
            "access log's subject references",
            code="audit_domain_taken",
        )
    if existing is None:
        record = domains.add(
            connection, name=AUDIT_DOMAIN, role="audit", card_luhn=False, now=access.now
        )
        sealing.seal_domain(connection, RowSealer(master), record)
    return _ensure_keyring(
        connection, master, owner=AUDIT_DOMAIN, purpose=keyrings.PSEUDONYM_PURPOSE, access=access
    )


def _check_master(connection: Connection, master: KeyEncryptionKey) -> None:
    check = meta_repo.get(connection, name=MASTER_CHECK)
    if check is None:
        meta_repo.put(connection, name=MASTER_CHECK, value=master.check_value())
    elif not master.matches(check):
        raise KeyUnavailable(
            f"the master key from {master.source} is not the one this database was "
            "initialised with",
            code="wrong_master_key",
        )


def _prepared_home(settings: Settings) -> tuple[KeyEncryptionKey, bool]:
    """The home and the master key, with whether a development key was generated in the home
    (only when no master key is configured and none is there yet); then the embedded
    database's file, created owner-only. A master key in a PKCS#11 token is generated there
    when the token has none under its label."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    generated = False
    if not settings.master_key_configured() and not settings.default_master_key_path.exists():
        write_development_key(settings.default_master_key_path)
        generated = True
    master = settings.load_master_key(create=True)
    if not settings.database_url and not settings.database_path.exists():
        # The embedded database holds pseudonyms and wrapped keys: owner-only from the start
        # (SQLite gives its -wal and -shm files the same mode).
        os.close(os.open(settings.database_path, os.O_WRONLY | os.O_CREAT, 0o600))
    return master, generated


def _scheme_row(connection: Connection, requested: str | None, fresh: bool) -> str:
    """The deployment's scheme: ``requested`` (``hmac`` by default) written by the first
    ``tiers init`` (``fresh``: its base key made now), checked by every later one. A deployment
    made before schemes existed runs ``hmac``. Raises :class:`ConfigurationError`
    (``unknown_scheme``, ``scheme_fixed``): its pseudonyms are the scheme's for good."""
    if requested is not None:
        schemes.check_scheme(requested)
    stored = meta_repo.get(connection, name=schemes.META_SCHEME)
    if stored is None and (fresh or requested in (None, schemes.HMAC)):
        stored = requested or schemes.HMAC
        meta_repo.put(connection, name=schemes.META_SCHEME, value=stored)
    if stored is None or (requested is not None and requested != stored):
        raise ConfigurationError(
            f"this deployment runs the {stored or schemes.HMAC} scheme: a scheme is chosen by "
            "the first tiers init and never changed",
            code="scheme_fixed",
        )
    return stored


def _service_rows(
    connection: Connection,
    settings: Settings,
    master: KeyEncryptionKey,
    access: Access,
    scheme: str | None = None,
) -> list[str]:
    """Create what is missing of the service's own rows: its keyrings, the audit domain, the
    seals of rows of power, the attachment policy, the log's origin, the scheme. Returns what
    it made."""
    fresh = not keystore.load(
        connection, owner=keyrings.SERVICE_OWNER, purpose=keyrings.BASE_PURPOSE
    )
    had_scheme = meta_repo.get(connection, name=schemes.META_SCHEME) is not None
    running = _scheme_row(connection, scheme, fresh=fresh)
    # The rows of a database made before seals are sealed before any is read (what is made
    # below is sealed by its maker), and after the scheme's row, which domains' seals bind.
    sealed = sealing.seal_unsealed(connection, RowSealer(master))
    created = [
        name
        for name, purpose in (
            ("base key", keyrings.BASE_PURPOSE),
            ("checkpoint signing key", keyrings.SIGNING_PURPOSE),
        )
        if _ensure_keyring(
            connection, master, owner=keyrings.SERVICE_OWNER, purpose=purpose, access=access
        )
    ]
    if not had_scheme:
        created.append(f"{running} scheme")
    if _ensure_audit_domain(connection, master, access):
        created.append("audit domain")
    if sealed:
        created.append(f"seals of {sealed} rows of power")
    if links_repo.active_policy(connection) is None:
        policy = load_policy(default_policy())
        links_repo.store_policy(
            connection,
            version=policy.version,
            name=policy.name,
            content=policy.source,
            now=access.now,
        )
        created.append("attachment policy")
    if meta_repo.get(connection, name=checkpointing.META_ORIGIN) is None:
        legacy = audit_log.peek_state(connection)[0] > 0
        origin = ORIGIN if legacy else settings.audit_origin or checkpointing.new_origin()
        meta_repo.put(connection, name=checkpointing.META_ORIGIN, value=origin)
    return created


def initialise(settings: Settings, *, access: Access, scheme: str | None = None) -> InitReport:
    """Create (or check) the home, the schema, the master key check value, the service keys
    (base, checkpoint signing, audit domain) and the pseudonym scheme (``hmac`` unless the first
    init asks for ``oprf``: :mod:`tiers.schemes`). Idempotent; logged as ``init``.

    Generates a development master key in the home only when no master key is configured and
    none is there yet. Raises :class:`KeyUnavailable` when the database was initialised under
    another master key.
    """
    master, generated = _prepared_home(settings)
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate(engine)
        with engine.begin() as connection:
            _check_master(connection, master)
            created = _service_rows(connection, settings, master, access, scheme)
            running = meta_repo.get(connection, name=schemes.META_SCHEME) or schemes.HMAC
            deployment = Deployment(settings, engine, master)
            new_store = not deployment.checkpoint_store(connection).exists()
            if new_store:
                created.append("checkpoint store")
            deployment.record(
                connection,
                access,
                action=Action.INIT,
                detail={"created": ", ".join(created) or "nothing"},
            )
        if new_store:
            checkpointing.adopt(deployment, now=access.now)
        else:
            checkpointing.sign_pending(deployment)
        url = engine.url.render_as_string(hide_password=True)
    finally:
        engine.dispose()
    return InitReport(
        home=str(settings.home),
        database=url,
        master_key_source=master.source,
        generated_development_key=generated,
        development_key=master.development,
        created=tuple(created),
        scheme=running,
    )


def _domain_detail(role: str, card_luhn: bool, blind_only: bool) -> dict[str, str | int]:
    """A new domain's entry detail (``blind_only`` only when set: older entries lack it)."""
    detail: dict[str, str | int] = {"role": role, "luhn": int(card_luhn)}
    if blind_only:
        detail["blind_only"] = 1
    return detail


@audited(Action.DOMAIN_ADD, domain_arg="name")
def add_domain(
    deployment: Deployment,
    *,
    access: Access,
    name: str,
    role: str,
    card_luhn: bool = False,
    blind_only: bool = False,
) -> DomainRecord:
    """Create a domain and its first key; ``blind_only``: a partner's domain whose identifiers
    the service only takes blinded. Raises :class:`InvalidRequest`, :class:`AlreadyExists`."""
    require(access, Action.DOMAIN_ADD)
    if not DOMAIN_NAME.fullmatch(name):
        raise InvalidRequest(
            "a domain name is a lower-case letter then 1 to 31 letters, digits or hyphens",
            code="bad_name",
        )
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", code="bad_role")
    if blind_only and role != "partner":
        raise InvalidRequest("only a partner's domain can be blind-only", code="bad_role")
    try:
        with deployment.transaction() as connection:
            if domains.get(connection, name=name) is not None:
                raise AlreadyExists("a domain of that name already exists (name)")
            record_ = domains.add(
                connection, name=name, role=role, card_luhn=card_luhn, now=access.now,
                blind_only=blind_only,
            )  # fmt: skip
            record_ = sealing.seal_domain(connection, deployment.sealer(), record_)
            keyrings.create_keyring(
                connection,
                deployment.master,
                owner=name,
                purpose=keyrings.PSEUDONYM_PURPOSE,
                now=access.now,
            )
            if role == "hub":  # cards enrolled before the hub existed get their keys now
                backfill_hub_keys(deployment, connection, record_, access.now)
            deployment.record(
                connection,
                access,
                action=Action.DOMAIN_ADD,
                domains=[name],
                detail=_domain_detail(role, card_luhn, blind_only),
            )
    except IntegrityError:  # a concurrent add of the same name won the race
        raise AlreadyExists("a domain of that name already exists (name)") from None
    return record_


@audited(Action.DOMAIN_LIST, domain_arg=None)
def list_domains(deployment: Deployment, *, access: Access) -> list[DomainRecord]:
    require(access, Action.DOMAIN_LIST)
    with deployment.transaction() as connection:
        found = domains.list_all(connection)
        deployment.record(
            connection, access, action=Action.DOMAIN_LIST, counts=Counts(records_out=len(found))
        )
    return found


@audited(Action.KEY_LIST)
def list_keys(deployment: Deployment, *, access: Access, domain: str) -> list[KeyVersion]:
    """Versions, states and dates of a domain's keys (never material)."""
    require(access, Action.KEY_LIST, domain)
    with deployment.transaction() as connection:
        record_ = deployment.domain(connection, domain)
        versions = list(deployment.domain_keyring(connection, record_))
        deployment.record(
            connection,
            access,
            action=Action.KEY_LIST,
            domains=[domain],
            counts=Counts(records_out=len(versions)),
        )
    return versions


@dataclass(frozen=True, slots=True)
class KeyRotation:
    domain: str
    old_version: int
    new_version: int
    reindexed: int


def _reindexed(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    record_: DomainRecord,
    keys: tuple[int, DomainKey],
) -> int:
    """Every subject of the domain's ``old`` version indexed under ``new_key`` too, derived
    from its base. The new entries are read by nothing until the rotation commits: they are
    held and inserted in key order. A partner is sent the translation of its pseudonyms."""
    old, new_key = keys
    scheme = schemes.pseudonymiser(deployment, connection)
    with sorted_inserts(connection), ExitStack() as stack:
        translated_to = None
        if record_.role == "partner":
            translated_to = stack.enter_context(
                translation(
                    deployment, connection, access=access, holder=record_,
                    old_version=old, new_version=new_key.version,
                    header=["old_pseudonym", "new_pseudonym"],
                )
            )  # fmt: skip
        return subjects.reindex(
            connection,
            domain_id=record_.id,
            from_version=old,
            to_version=new_key.version,
            derive=lambda base: scheme.values(record_, new_key, [base])[0],
            now=access.now,
            translated=translated_to,
        )


@audited(Action.KEY_ROTATE)
def rotate_key(deployment: Deployment, *, access: Access, domain: str) -> KeyRotation:
    """New active version for ``domain``; every stored pseudonym is re-derived from its base,
    and the domain's holder is sent the translation (:mod:`tiers.rekey`).

    One transaction: either the new version exists with a complete index, or nothing changed.
    """
    require(access, Action.KEY_ROTATE, domain)
    with deployment.transaction() as connection, bulk_load(connection):
        record_ = deployment.domain(connection, domain)
        keyring = deployment.domain_keyring(connection, record_)
        old = keyring.active_version
        rotated = keyrings.rotate_keyring(connection, deployment.master, keyring, now=access.now)
        new_key = rotated.active
        count = _reindexed(deployment, connection, access, record_, (old, new_key))
        translated = 0
        if record_.role == "hub":
            translated = rekey_hub(
                deployment,
                connection,
                access=access,
                hub=record_,
                old_version=old,
                new_key=new_key,
            )
        deployment.record(
            connection,
            access,
            action=Action.KEY_ROTATE,
            domains=[domain],
            counts=Counts(records_in=count + translated, records_out=count + translated),
            detail={"old_version": old, "new_version": new_key.version, "hub_keys": translated},
        )
    return KeyRotation(domain, old, new_key.version, count + translated)


@dataclass(frozen=True, slots=True)
class KeyDestruction:
    domain: str
    version: int
    unlinked: int


@audited(Action.KEY_DESTROY)
def destroy_key(
    deployment: Deployment, *, access: Access, domain: str, version: int
) -> KeyDestruction:
    """Crypto-shred one version: erase its wrapped key and every index entry made with it.

    Raises :class:`~errors.UnknownKeyVersion`, :class:`~errors.KeyDestroyed`
    (already destroyed) and :class:`~errors.KeyStateError` (the active version).
    """
    require(access, Action.KEY_DESTROY, domain)
    with deployment.transaction() as connection:
        record_ = deployment.domain(connection, domain)
        keyring = deployment.domain_keyring(connection, record_)
        keyrings.destroy_version(
            connection, deployment.master, keyring, version=version, now=access.now
        )
        unlinked = subjects.delete_version(connection, domain_id=record_.id, version=version)
        # and what a Spark job's executors staged with it, if its driver never registered it
        staged.discard(connection, domain_id=record_.id, version=version)
        if record_.role == "hub":
            unlinked += drop_hub_version(connection, version)
        deployment.record(
            connection,
            access,
            action=Action.KEY_DESTROY,
            domains=[domain],
            counts=Counts(records_in=unlinked),
            detail={"version": version},
        )
    scrub_deleted(deployment.engine, "keys", "pseudonym_index", "staged_subjects")
    return KeyDestruction(domain, version, unlinked)


@audited(Action.KEY_RETIRE)
def retire_key(
    deployment: Deployment, *, access: Access, domain: str, version: int, force: bool = False
) -> KeyDestruction:
    """End the overlap of a verify-only version: its pseudonyms (for the hub, its linking keys)
    stop resolving and its key is destroyed. Refused before the overlap window
    (``TIERS_ROTATION_OVERLAP_DAYS`` after the rotation) has passed, unless ``force``."""
    require(access, Action.KEY_DESTROY, domain)
    with deployment.transaction() as connection:
        record_ = deployment.domain(connection, domain)
        meta = deployment.domain_keyring(connection, record_).versions.get(version)
    overlap = deployment.settings.rotation_overlap
    if meta is not None and not force and meta.state_changed_at + overlap > access.now:
        raise KeyStateError(
            f"{domain} version {version} overlaps until "
            f"{(meta.state_changed_at + overlap).date().isoformat()}; add --force to retire now",
            code="overlap_not_over",
        )
    return destroy_key(deployment, access=access, domain=domain, version=version)
