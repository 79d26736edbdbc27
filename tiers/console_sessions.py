"""Sessions of the console: an auditor or an admin signs in once with an API key and a purpose.

The browser holds a random token (a cookie); the database holds its SHA-256 only. A session
ends when its user signs out, after ``console_idle_seconds`` without a page, after
``console_session_hours`` in all, and at once when its client's key is rotated or revoked (the
key's version is kept with the session and checked at every page) or its client's row fails
its seal. The session's own row is sealed under the master key (like the clients'): a
database writer who inserts or edits one opens no session; a master-key rotation ends them all.
Partners and the hub have no console: their keys are refused at sign-in (and the refusal is
logged). Every page that shows data is an entry of the log with the purpose given at sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from audit import Action
from errors import Forbidden
from tiers import sealing
from tiers.auditing import Access, audited, stated_purpose
from tiers.deployment import Deployment
from tiers.storage import clients as clients_repo
from tiers.storage import sessions as sessions_repo
from tiers.storage.clients import ClientRecord

__all__ = ["ConsoleSession", "session_of", "sign_in", "sign_out"]

CONSOLE_ROLES = frozenset({"auditor", "admin"})
SESSION = "console_session"  # the kind of row a seal is for (tiers.sealing)
# A session's last use is written at most this often (a page is a read, mostly), and at least
# four times within the idle limit.
_TOUCH_EVERY = timedelta(seconds=5)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    client: ClientRecord
    purpose: str

    def access(self, now: datetime, request_id: str) -> Access:
        """The access record of one page of this session."""
        return Access(
            actor=self.client.name,
            role=self.client.role,
            purpose=self.purpose,
            now=now,
            request_id=request_id,
            domain=self.client.domain,
            client_id=self.client.id,
        )


@audited(Action.CONSOLE_SIGN_IN, domain_arg=None)
def sign_in(deployment: Deployment, *, access: Access, client: ClientRecord) -> str:
    """Open a session for ``client`` (whose key the caller verified): its token, for the
    cookie. ``access`` carries the purpose stated at sign-in (required)."""
    stated_purpose(access.purpose, required=True, how="the purpose field")
    if client.role not in CONSOLE_ROLES:
        raise Forbidden("the console is for auditors and admins", code="console_role")
    token = secrets.token_urlsafe(32)
    record = sessions_repo.SessionRecord(
        token_hash=_hash(token),
        client_id=client.id,
        credential_version=client.credential_version,
        purpose=access.purpose,
        created_at=access.now,
        seen_at=access.now,
        seal="",
    )
    record = replace(record, seal=deployment.sealer().seal(SESSION, _fields(record)))
    with deployment.transaction() as connection:
        sessions_repo.add(connection, record)
        deployment.record(connection, access, action=Action.CONSOLE_SIGN_IN)
    return token


def _fields(record: sessions_repo.SessionRecord) -> list[str | int | bool | None]:
    """What a session's seal covers: everything but its last use."""
    return [
        record.token_hash.hex(),
        record.client_id,
        record.credential_version,
        record.purpose,
        record.created_at.isoformat(),
    ]


def _expired(deployment: Deployment, record: sessions_repo.SessionRecord, now: datetime) -> bool:
    settings = deployment.settings
    return now - record.seen_at > timedelta(
        seconds=settings.console_idle_seconds
    ) or now - record.created_at > timedelta(hours=settings.console_session_hours)


def session_of(
    deployment: Deployment, token: str | None, *, now: datetime
) -> ConsoleSession | None:
    """The live session of ``token``, its last use noted; None (and the row gone) if it has
    ended for any reason."""
    if not token:
        return None
    token_hash = _hash(token)
    with deployment.reading() as connection:
        record = sessions_repo.by_hash(connection, token_hash)
        client = (
            None
            if record is None
            else clients_repo.by_ids(connection, [record.client_id]).get(record.client_id)
        )
    if record is None:
        return None
    alive = (
        client is not None
        and client.active
        and client.credential_version == record.credential_version
        and client.role in CONSOLE_ROLES
        and sealing.client_holds(deployment.sealer(), client)
        and deployment.sealer().holds(SESSION, _fields(record), record.seal)
        and not _expired(deployment, record, now)
    )
    idle = timedelta(seconds=deployment.settings.console_idle_seconds)
    if not alive or now - record.seen_at > min(_TOUCH_EVERY, idle / 4):
        with deployment.transaction(checkpoint=False) as connection:
            if alive:
                sessions_repo.touch(connection, token_hash, now)
            else:
                sessions_repo.drop(connection, token_hash)
    if not alive or client is None:
        return None
    return ConsoleSession(client, record.purpose)


@audited(Action.CONSOLE_SIGN_OUT, domain_arg=None)
def sign_out(deployment: Deployment, *, access: Access, token: str) -> None:
    """End the session of ``token`` (and, while at it, every session that has expired)."""
    settings = deployment.settings
    with deployment.transaction() as connection:
        sessions_repo.drop(connection, _hash(token))
        sessions_repo.drop_before(
            connection,
            seen_before=access.now - timedelta(seconds=settings.console_idle_seconds),
            created_before=access.now - timedelta(hours=settings.console_session_hours),
        )
        deployment.record(connection, access, action=Action.CONSOLE_SIGN_OUT)
