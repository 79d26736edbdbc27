"""API clients: creation, key rotation, revocation, and authentication of their API keys.

An API key is ``tiers_<prefix>_<secret>``: the 10-character prefix is public and random and
finds the client; the 256-bit secret is checked against an Argon2id hash (argon2-cffi). A key is
shown once, when it is issued, and never stored. Verifying Argon2 on every request would cap a
worker at a few dozen requests per second, so a successful verification is cached for a short
time under a keyed hash of the key; the client's ``credential_version`` is checked on every
request, so a revocation or rotation takes effect at once on every worker.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection

from audit import Action, Counts
from errors import (
    AlreadyExists,
    Forbidden,
    InvalidRequest,
    NotFound,
    RevokedKey,
    Unauthorised,
)
from tiers import sealing
from tiers.auditing import Access, audited
from tiers.authorisation import CLIENT_ROLES, require
from tiers.deployment import Deployment
from tiers.pseudonyms import DOMAIN_NAME
from tiers.storage import clients as clients_repo
from tiers.storage.clients import ClientRecord

__all__ = [
    "Authenticator",
    "ClientRecord",
    "IssuedKey",
    "add_client",
    "key_prefix",
    "list_clients",
    "revoke_client",
    "rotate_client_key",
    "whoami",
]

Argon2Profile = Literal["owasp", "rfc9106-low-memory", "test"]
# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
ARGON2_PROFILES = {
    "owasp": dict(time_cost=2, memory_cost=19 * 1024, parallelism=1),
    "rfc9106-low-memory": dict(
        time_cost=profiles.RFC_9106_LOW_MEMORY.time_cost,
        memory_cost=profiles.RFC_9106_LOW_MEMORY.memory_cost,
        parallelism=profiles.RFC_9106_LOW_MEMORY.parallelism,
    ),
    # Cheapest possible: for the test suite only; production settings refuse it.
    "test": dict(time_cost=1, memory_cost=8, parallelism=1),
}
_KEY = re.compile(r"tiers_([a-z2-7]{10})_([A-Za-z0-9_-]{43})")
_CACHE_SECONDS = 60.0


def key_prefix(token: str | None) -> str | None:
    """The public part of an API key (``tiers_<10 characters>``), if ``token`` has the form of
    one: it names a key without being a secret, and may be logged."""
    match = _KEY.fullmatch(token or "")
    return f"tiers_{match[1]}" if match else None


def password_hasher(profile: str) -> PasswordHasher:
    return PasswordHasher(type=Type.ID, **ARGON2_PROFILES[profile])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, repr=False)
class IssuedKey:
    """A newly issued API key: shown once to the operator, never stored."""

    client: ClientRecord
    token: str

    def __repr__(self) -> str:
        return f"<IssuedKey for {self.client.name} (redacted)>"


def _new_key() -> tuple[str, str]:
    prefix = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:10]
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return prefix, f"tiers_{prefix}_{secret}"


def validate(
    deployment: Deployment, connection: object, *, name: str, role: str, domain: str | None
) -> None:
    """Refuse a client that cannot be: a bad name, role, or domain for the role."""
    if not DOMAIN_NAME.fullmatch(name):
        raise InvalidRequest(
            "a client name is a lower-case letter then 1 to 31 letters, digits or hyphens",
            code="bad_name",
        )
    if role not in CLIENT_ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(CLIENT_ROLES)}", code="bad_role")
    if role in ("partner", "hub"):
        if domain is None:
            raise InvalidRequest(f"a {role} client needs --domain", code="domain_required")
        record = deployment.domain(connection, domain)  # type: ignore[arg-type]
        if record.role != role:
            raise InvalidRequest(f"the domain is not a {role} domain (domain)", code="wrong_role")
    elif domain is not None:
        raise InvalidRequest(f"a {role} client has no domain", code="no_domain_allowed")


def _directly(access: Access) -> None:
    """Only the operator on the host creates or re-keys a client at once; an admin client of
    the API asks, and another admin approves (:mod:`tiers.approvals`)."""
    if access.client_id is not None:
        raise Forbidden(
            "over the API a client is asked for, and another admin approves",
            code="approval_required",
        )


def create(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    *,
    name: str,
    role: str,
    domain: str | None,
) -> IssuedKey:
    """Create a client in the caller's transaction (checked, sealed) and issue its key."""
    validate(deployment, connection, name=name, role=role, domain=domain)
    if clients_repo.by_name(connection, name=name) is not None:
        raise AlreadyExists("a client of that name already exists (name)")
    prefix, token = _new_key()
    hasher = password_hasher(deployment.settings.argon2_profile)
    record = clients_repo.add(
        connection,
        name=name,
        role=role,
        domain=domain,
        key_prefix=prefix,
        key_hash=hasher.hash(token),
        now=access.now,
    )
    sealing.seal_client(connection, deployment.sealer(), client_id=record.id)
    return IssuedKey(clients_repo.by_id(connection, client_id=record.id) or record, token)


def rekey(deployment: Deployment, connection: Connection, record: ClientRecord) -> IssuedKey:
    """A new key for ``record`` in the caller's transaction; the old one stops working."""
    prefix, token = _new_key()
    hasher = password_hasher(deployment.settings.argon2_profile)
    clients_repo.set_key(
        connection, client_id=record.id, key_prefix=prefix, key_hash=hasher.hash(token)
    )
    sealing.seal_client(connection, deployment.sealer(), client_id=record.id)
    updated = clients_repo.by_id(connection, client_id=record.id)
    assert updated is not None
    return IssuedKey(updated, token)


@audited(Action.CLIENT_ADD, domain_arg="domain")
def add_client(
    deployment: Deployment, *, access: Access, name: str, role: str, domain: str | None = None
) -> IssuedKey:
    """Create a client and issue its API key (the operator; see :func:`_directly`). Raises
    :class:`InvalidRequest`, :class:`AlreadyExists`, :class:`NotFound` (its domain)."""
    require(access, Action.CLIENT_ADD)
    _directly(access)
    with deployment.transaction() as connection:
        issued = create(deployment, connection, access, name=name, role=role, domain=domain)
        deployment.record(
            connection,
            access,
            action=Action.CLIENT_ADD,
            domains=[domain] if domain else [],
            detail={"client": name, "role": role},
        )
    return issued


@audited(Action.CLIENT_LIST, domain_arg=None)
def list_clients(deployment: Deployment, *, access: Access) -> list[ClientRecord]:
    require(access, Action.CLIENT_LIST)
    with deployment.transaction() as connection:
        found = clients_repo.list_all(connection)
        deployment.record(
            connection, access, action=Action.CLIENT_LIST, counts=Counts(records_out=len(found))
        )
    return found


def active_client(connection: Connection, name: str) -> ClientRecord:
    """The client ``name``, which must not be revoked."""
    record = _client(connection, name)
    if not record.active:
        raise InvalidRequest("the client is revoked", code="already_revoked")
    return record


def _client(connection: object, name: str) -> ClientRecord:
    valid = DOMAIN_NAME.fullmatch(name)
    record = clients_repo.by_name(connection, name=name) if valid else None  # type: ignore[arg-type]
    if record is None:
        raise NotFound("unknown client (name)", code="unknown_client")
    return record


@audited(Action.CLIENT_REVOKE, domain_arg=None)
def revoke_client(deployment: Deployment, *, access: Access, name: str) -> ClientRecord:
    """Revoke a client's key for good (its cached verifications die with it); returns the
    client as it now is."""
    require(access, Action.CLIENT_REVOKE)
    with deployment.transaction() as connection:
        record = _client(connection, name)
        if not record.active:
            raise InvalidRequest("the client is already revoked", code="already_revoked")
        clients_repo.revoke(connection, client_id=record.id, now=access.now)
        sealing.seal_client(connection, deployment.sealer(), client_id=record.id)
        deployment.record(connection, access, action=Action.CLIENT_REVOKE, detail={"client": name})
        revoked = clients_repo.by_id(connection, client_id=record.id)
    assert revoked is not None
    return revoked


@audited(Action.CLIENT_ROTATE_KEY, domain_arg=None)
def rotate_client_key(deployment: Deployment, *, access: Access, name: str) -> IssuedKey:
    """Issue a new key; the old one stops working at once."""
    require(access, Action.CLIENT_ROTATE_KEY)
    _directly(access)
    with deployment.transaction() as connection:
        issued = rekey(deployment, connection, active_client(connection, name))
        deployment.record(
            connection, access, action=Action.CLIENT_ROTATE_KEY, detail={"client": name}
        )
    return issued


@audited(Action.WHOAMI, domain_arg=None)
def whoami(deployment: Deployment, *, access: Access) -> ClientRecord:
    """The calling client, as the service knows it."""
    require(access, Action.WHOAMI)
    with deployment.transaction() as connection:
        record = clients_repo.by_id(connection, client_id=access.client_id or -1)
        if record is None:
            raise NotFound("unknown client", code="unknown_client")
        deployment.record(connection, access, action=Action.WHOAMI)
    return record


class Authenticator:
    """Checks bearer tokens; one per process. Unknown, revoked and wrong keys cost the same and
    raise the same :class:`Unauthorised`."""

    def __init__(self, deployment: Deployment, *, cache_seconds: float = _CACHE_SECONDS) -> None:
        self._deployment = deployment
        self._hasher = password_hasher(deployment.settings.argon2_profile)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(32))
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[int, int, float]] = {}
        self._lock = threading.Lock()
        self._cache_seconds = cache_seconds

    def _fingerprint(self, token: str) -> bytes:
        return hmac.new(self._cache_key, token.encode(), hashlib.sha256).digest()

    def _refuse(self) -> Unauthorised:
        return Unauthorised("missing or invalid API key")

    def _obeyed(self, record: ClientRecord) -> ClientRecord:
        """``record`` if its seal holds; :class:`~errors.RowTampered` otherwise (a role,
        domain or key changed outside the service is not obeyed)."""
        return sealing.check_client(self._deployment.sealer(), record)

    def _dummy_verify(self) -> None:
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy, "tiers_" + "x" * 54)

    def cached(self, token: str | None) -> ClientRecord | None:
        """The client holding ``token`` if a verification of it is cached and still holds: one
        read of the client's row, no Argon2. None when :meth:`authenticate` must decide."""
        return self.cached_many([token])[0]

    def cached_many(self, tokens: Sequence[str | None]) -> list[ClientRecord | None]:
        """:meth:`cached` of each token, with one read of the clients' rows for all."""
        fingerprints = [self._fingerprint(token) if token else None for token in tokens]
        now = time.monotonic()
        with self._lock:
            held = [self._cache.get(f) if f is not None else None for f in fingerprints]
        held = [entry if entry is not None and entry[2] > now else None for entry in held]
        ids = [entry[0] for entry in held if entry is not None]
        if not ids:
            return [None] * len(tokens)
        with self._deployment.reading() as connection:
            records = clients_repo.by_ids(connection, ids)
        answers: list[ClientRecord | None] = []
        for fingerprint, entry in zip(fingerprints, held, strict=True):
            if fingerprint is None or entry is None:
                answers.append(None)
                continue
            record = records.get(entry[0])
            if (
                record is None
                or not record.active
                or record.credential_version != entry[1]
                or not sealing.client_holds(self._deployment.sealer(), record)
            ):
                # authenticate() decides afresh (and refuses a row whose seal fails)
                with self._lock:
                    self._cache.pop(fingerprint, None)
                record = None
            answers.append(record)
        return answers

    def authenticate(self, token: str | None) -> ClientRecord:
        """The client holding ``token``; raises :class:`Unauthorised` otherwise."""
        match = _KEY.fullmatch(token or "")
        if match is None or token is None:
            self._dummy_verify()
            raise self._refuse()
        record = self.cached(token)
        if record is not None:
            return record
        with self._deployment.reading() as connection:
            record = clients_repo.by_prefix(connection, prefix=match[1])
        if record is None:
            self._dummy_verify()
            raise self._refuse()
        try:
            self._hasher.verify(record.key_hash, token)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise self._refuse() from None
        if not record.active:
            raise RevokedKey(record.name)
        self._obeyed(record)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[self._fingerprint(token)] = (
                record.id,
                record.credential_version,
                time.monotonic() + self._cache_seconds,
            )
        return record
