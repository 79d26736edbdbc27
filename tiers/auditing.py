"""Recording accesses: who did what, why, to whom, with what outcome, in the access log.

Every core operation takes an :class:`Access` (who is asking and why) and records exactly one
entry. A successful operation records its entry inside its own transaction, so that the change
and its entry are committed together or not at all (fail closed). A refused or failed operation
is recorded by :func:`audited` in a transaction of its own after the operation rolled back.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from audit import Action, AuditEntry, CompactRange, Counts, leaf_hash
from errors import (
    AuditUnavailable,
    Forbidden,
    InvalidRequest,
    PolicyViolation,
    PurposeRequired,
    RateLimited,
    TiersError,
    Unauthorised,
)
from tiers.pseudonyms import DOMAIN_NAME
from tiers.storage import audit_log

__all__ = [
    "AUDIT_DOMAIN",
    "Access",
    "Counts",
    "Pending",
    "audited",
    "is_recorded",
    "mark_recorded",
    "purpose_or_unspecified",
    "record",
    "record_failure",
    "record_many",
    "stated_purpose",
]

AUDIT_DOMAIN = "audit"
MAX_PURPOSE = 200
UNSPECIFIED = "unspecified"
_log = logging.getLogger("tiers.audit")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Access:
    """Who is asking, in which role, why, and when; one per request or command."""

    actor: str
    role: str
    purpose: str
    now: datetime
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The one domain a partner or hub client is bound to; None for the other roles.
    domain: str | None = None
    # The API client's id (None on the command line).
    client_id: int | None = None


def stated_purpose(text: str | None, *, required: bool, how: str) -> str:
    """The purpose a caller stated (``how``: where it is stated), trimmed; ``unspecified`` when
    none was stated and none is ``required``. A purpose goes into the log as it is: it may not
    hold control characters, nor be longer than ``MAX_PURPOSE``. An access to data, links,
    deliveries, outputs or the log's entries requires one (:class:`PurposeRequired`);
    ``unspecified`` itself is not one."""
    purpose = (text or "").strip()
    if any(unicodedata.category(c)[0] == "C" for c in purpose):
        raise InvalidRequest("the purpose may not hold control characters", code="bad_purpose")
    if len(purpose) > MAX_PURPOSE:
        raise InvalidRequest(
            f"the purpose is longer than {MAX_PURPOSE} characters", code="bad_purpose"
        )
    if purpose in ("", UNSPECIFIED):
        if required:
            raise PurposeRequired(how)
        return UNSPECIFIED
    return purpose


def purpose_or_unspecified(text: str | None) -> str:
    """``text`` as a purpose if it is a valid one, else ``unspecified`` (never raises): the
    purpose of an access record made before the purpose is checked."""
    try:
        return stated_purpose(text, required=False, how="")
    except InvalidRequest:
        return UNSPECIFIED


@dataclass(frozen=True, slots=True)
class Pending:
    """One entry to append: the access and what the operation did."""

    access: Access
    action: Action
    outcome: str = "ok"
    code: str | None = None
    domains: Sequence[str] = ()
    counts: Counts = field(default_factory=Counts)
    subject: str | None = None
    detail: Mapping[str, str | int] = field(default_factory=dict)


def _append(connection: Connection, pending: Sequence[Pending]) -> list[AuditEntry]:
    """Append ``pending`` in order: the log head read and locked once, the entries inserted
    together, the head saved once. Checkpoints are signed once the entries are committed
    (tiers._checkpointing), never inside the transaction that writes them."""
    state = audit_log.lock_state(connection)
    tree = CompactRange(state.next_seq, state.frontier)
    entries: list[AuditEntry] = []
    rows: list[dict[str, object]] = []
    for item in pending:
        access = item.access
        entry = AuditEntry(
            seq=state.next_seq,
            time=access.now,
            actor=access.actor,
            role=access.role,
            action=item.action,
            purpose=access.purpose,
            outcome=item.outcome,  # type: ignore[arg-type]
            request_id=access.request_id,
            prev=state.head,
            domains=tuple(item.domains),
            counts=item.counts,
            code=item.code,
            subject=item.subject,
            detail=dict(item.detail),
        )
        data = entry.canonical()
        digest = leaf_hash(data)
        rows.append(
            audit_log.entry_row(
                seq=entry.seq,
                time=access.now,
                actor=access.actor,
                action=item.action,
                outcome=item.outcome,
                subject=item.subject,
                other_subject=audit_log.other_subject_of(item.detail),
                entry=data,
                digest=digest,
            )
        )
        tree.append(digest)
        state.next_seq += 1
        state.head = digest.hex()
        entries.append(entry)
    audit_log.insert_entries(connection, rows)
    state.frontier = tree.nodes
    audit_log.save_state(connection, state)
    return entries


def record(
    connection: Connection,
    access: Access,
    *,
    action: Action,
    outcome: str = "ok",
    code: str | None = None,
    domains: Sequence[str] = (),
    counts: Counts | None = None,
    subject: str | None = None,
    detail: Mapping[str, str | int] | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction.

    Raises :class:`AuditUnavailable` when the entry cannot be written; the caller's transaction
    then rolls back and the operation does not happen.
    """
    entry = Pending(
        access,
        action,
        outcome=outcome,
        code=code,
        domains=domains,
        counts=counts or Counts(),
        subject=subject,
        detail=detail or {},
    )
    return record_many(connection, [entry])[0]


def record_many(connection: Connection, pending: Sequence[Pending]) -> list[AuditEntry]:
    """Append an entry for each of several operations done in the caller's transaction, in
    order (see :func:`record`)."""
    try:
        return _append(connection, pending)
    except SQLAlchemyError as exc:
        raise AuditUnavailable(
            f"the access log cannot be written ({type(exc).__name__}); nothing was done"
        ) from None


def _outcome(error: BaseException) -> tuple[str, str]:
    if isinstance(error, TiersError):
        denied = isinstance(
            error, PolicyViolation | Forbidden | Unauthorised | RateLimited | PurposeRequired
        )
        return ("denied" if denied else "error"), error.code
    return "error", "internal"


def record_failure(
    engine: Engine,
    access: Access,
    *,
    action: Action,
    error: BaseException,
    domains: Sequence[str] = (),
    detail: Mapping[str, str | int] | None = None,
) -> bool:
    """Record a refused or failed operation in a transaction of its own. Returns whether it
    could. Never raises: the caller reports the original error either way."""
    outcome, code = _outcome(error)
    try:
        with engine.begin() as connection:
            entry = Pending(
                access, action, outcome=outcome, code=code, domains=domains, detail=detail or {}
            )
            _append(connection, [entry])
    except Exception as exc:  # noqa: BLE001 - reported as a log line, the operation's error wins
        _log.error("could not record a failed %s in the access log: %s", action, type(exc).__name__)
        return False
    return True


_RECORDED = "_tiers_recorded"


def mark_recorded(error: BaseException) -> None:
    """Note that ``error`` is in the access log, so that an outer layer does not log it twice."""
    setattr(error, _RECORDED, True)


def is_recorded(error: BaseException) -> bool:
    return bool(getattr(error, _RECORDED, False))


def _safe_domain(value: object) -> list[str]:
    """The domain named by a failed request, if it is a well-formed name: a mistyped argument
    could hold anything, and nothing but names may reach the log."""
    if isinstance(value, str) and DOMAIN_NAME.fullmatch(value):
        return [value]
    return [] if value is None else ["<invalid>"]


def audited(
    action: Action, *, domain_arg: str | None = "domain"
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a core operation ``f(deployment, *, access, ...)`` so that a failure is logged.

    The operation records its own success (see :func:`record`); when it raises instead, one
    entry with outcome ``error`` or ``denied`` and the error's code is appended, naming the
    domain from the keyword argument ``domain_arg``. An interruption is logged as ``interrupted``.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except BaseException as error:
                access = kwargs.get("access")
                if isinstance(access, Access) and args and not is_recorded(error):
                    failure = (
                        TiersError("interrupted", code="interrupted")
                        if isinstance(error, KeyboardInterrupt)
                        else error
                    )
                    record_failure(
                        args[0].engine,  # type: ignore[attr-defined]
                        access,
                        action=action,
                        error=failure,
                        domains=_safe_domain(kwargs.get(domain_arg) if domain_arg else None),
                    )
                    mark_recorded(error)
                raise

        return wrapper

    return decorate
