"""Operator operations: initialise a home, manage domains and their keys.

Each function is the one core implementation that the CLI (and later the API) calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from keys import KeyVersion, write_development_key
from tiers import keyrings
from tiers.deployment import MASTER_CHECK, Deployment
from tiers.errors import AlreadyExists, InvalidRequest, KeyUnavailable, NotInitialised
from tiers.pseudonyms import DOMAIN_NAME, domain_pseudonym
from tiers.settings import Settings
from tiers.storage import domains, make_engine, migrate, scrub_deleted, subjects
from tiers.storage import meta as meta_repo
from tiers.storage.domains import DomainRecord

__all__ = [
    "ROLES",
    "InitReport",
    "KeyDestruction",
    "KeyRotation",
    "add_domain",
    "destroy_key",
    "initialise",
    "list_domains",
    "list_keys",
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
    created_base_key: bool


def initialise(settings: Settings, *, now: datetime) -> InitReport:
    """Create (or check) the home, the schema, the master key check value and the base key.

    Idempotent. Generates a development master key in the home only when no master key is
    configured and none is there yet. Raises :class:`KeyUnavailable` when the database was
    initialised under another master key.
    """
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    generated = False
    if not settings.master_key_configured() and not settings.default_master_key_path.exists():
        write_development_key(settings.default_master_key_path)
        generated = True
    master = settings.load_master_key()
    if not settings.database_url and not settings.database_path.exists():
        # The embedded database holds pseudonyms and wrapped keys: owner-only from the start
        # (SQLite gives its -wal and -shm files the same mode).
        os.close(os.open(settings.database_path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate(engine)
        created_base = False
        with engine.begin() as connection:
            check = meta_repo.get(connection, name=MASTER_CHECK)
            if check is None:
                meta_repo.put(connection, name=MASTER_CHECK, value=master.check_value())
            elif not master.matches(check):
                raise KeyUnavailable(
                    f"the master key from {master.source} is not the one this database was "
                    "initialised with",
                    code="wrong_master_key",
                )
            try:
                keyrings.load_keyring(
                    connection, master, owner=keyrings.SERVICE_OWNER, purpose=keyrings.BASE_PURPOSE
                )
            except NotInitialised:
                keyrings.create_keyring(
                    connection,
                    master,
                    owner=keyrings.SERVICE_OWNER,
                    purpose=keyrings.BASE_PURPOSE,
                    now=now,
                )
                created_base = True
        url = engine.url.render_as_string(hide_password=True)
    finally:
        engine.dispose()
    return InitReport(
        home=str(settings.home),
        database=url,
        master_key_source=master.source,
        generated_development_key=generated,
        development_key=master.development,
        created_base_key=created_base,
    )


def add_domain(
    deployment: Deployment, *, name: str, role: str, card_luhn: bool = False, now: datetime
) -> DomainRecord:
    """Create a domain and its first key. Raises :class:`InvalidRequest`, :class:`AlreadyExists`."""
    if not DOMAIN_NAME.fullmatch(name):
        raise InvalidRequest(
            "a domain name is a lower-case letter then 1 to 31 letters, digits or hyphens",
            code="bad_name",
        )
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", code="bad_role")
    try:
        with deployment.transaction() as connection:
            if domains.get(connection, name=name) is not None:
                raise AlreadyExists(f"domain {name!r} already exists")
            record = domains.add(connection, name=name, role=role, card_luhn=card_luhn, now=now)
            keyrings.create_keyring(
                connection,
                deployment.master,
                owner=name,
                purpose=keyrings.PSEUDONYM_PURPOSE,
                now=now,
            )
    except IntegrityError:  # a concurrent add of the same name won the race
        raise AlreadyExists(f"domain {name!r} already exists") from None
    return record


def list_domains(deployment: Deployment) -> list[DomainRecord]:
    with deployment.engine.connect() as connection:
        return domains.list_all(connection)


def list_keys(deployment: Deployment, *, domain: str) -> list[KeyVersion]:
    """Versions, states and dates of a domain's keys (never material)."""
    with deployment.engine.connect() as connection:
        record = deployment.domain(connection, domain)
        return list(deployment.domain_keyring(connection, record))


@dataclass(frozen=True, slots=True)
class KeyRotation:
    domain: str
    old_version: int
    new_version: int
    reindexed: int


def rotate_key(deployment: Deployment, *, domain: str, now: datetime) -> KeyRotation:
    """New active version for ``domain``; every stored pseudonym is re-derived from its base.

    One transaction: either the new version exists with a complete index, or nothing changed.
    """
    with deployment.transaction() as connection:
        record = deployment.domain(connection, domain)
        keyring = deployment.domain_keyring(connection, record)
        old = keyring.active_version
        rotated = keyrings.rotate_keyring(connection, deployment.master, keyring, now=now)
        new_key = rotated.active

        def derive(base: bytes) -> bytes:
            return domain_pseudonym(new_key, domain, base).value

        count = subjects.reindex(
            connection,
            domain_id=record.id,
            from_version=old,
            to_version=new_key.version,
            derive=derive,
            now=now,
        )
    return KeyRotation(domain, old, new_key.version, count)


@dataclass(frozen=True, slots=True)
class KeyDestruction:
    domain: str
    version: int
    unlinked: int


def destroy_key(
    deployment: Deployment, *, domain: str, version: int, now: datetime
) -> KeyDestruction:
    """Crypto-shred one version: erase its wrapped key and every index entry made with it.

    Raises :class:`~tiers.errors.UnknownKeyVersion`, :class:`~tiers.errors.KeyDestroyed`
    (already destroyed) and :class:`~tiers.errors.KeyStateError` (the active version).
    """
    with deployment.transaction() as connection:
        record = deployment.domain(connection, domain)
        keyring = deployment.domain_keyring(connection, record)
        keyrings.destroy_version(connection, keyring, version=version, now=now)
        unlinked = subjects.delete_version(connection, domain_id=record.id, version=version)
    scrub_deleted(deployment.engine, "keys", "pseudonym_index")
    return KeyDestruction(domain, version, unlinked)
