"""Four eyes on who may hold keys: over the API, a client is created or re-keyed only when a
second admin approves.

An admin client of the API could otherwise create a partner client and a hub client for itself
and hold both sides of a link. So an admin client **requests** (:func:`request_client`): a new
client of any role, or a new key for an existing one (every role: an admin client made at will
could approve its maker's requests). Another admin approves (:func:`approve_request`) before
the request expires (``client_request_hours``): the client is then created, or re-keyed, and
its key is in the approver's answer, once. The requester can never approve its own request.
The operator on the host's command line creates, re-keys and approves directly: that is logged
under the operator's login name, and the access report lists it.

Revoking needs no second pair of eyes: it only takes power away.

A request is a row of power until it is decided, so it carries a seal like a client's
(:mod:`tiers.sealing`): one changed outside the service is not obeyed (``row_tampered``).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Connection

from audit import Action
from errors import AlreadyExists, Forbidden, NotFound, RowTampered, StateConflict
from tiers import clients
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.clients import IssuedKey
from tiers.deployment import Deployment
from tiers.storage import approvals as approvals_repo
from tiers.storage import clients as clients_repo
from tiers.storage.approvals import RequestRecord

__all__ = ["RequestRecord", "approve_request", "list_requests", "request_client"]

_KIND = "client_request"


def _fields(record: RequestRecord) -> list[str | int | bool | None]:
    return [
        record.id,
        record.kind,
        record.name,
        record.role,
        record.domain,
        record.requested_by,
        record.requested_at.isoformat(),
        record.expires_at.isoformat(),
        record.state,
        record.decided_by,
    ]


def _sealed(deployment: Deployment, record: RequestRecord) -> RequestRecord:
    return replace(record, seal=deployment.sealer().seal(_KIND, _fields(record)))


def _requester(access: Access) -> str:
    if access.client_id is None:
        raise Forbidden("requests are made by admin clients of the API; the operator acts directly")
    return access.actor


@audited(Action.CLIENT_REQUEST, domain_arg="domain")
def request_client(
    deployment: Deployment,
    *,
    access: Access,
    kind: str,
    name: str,
    role: str | None = None,
    domain: str | None = None,
) -> RequestRecord:
    """Ask for a new client (``kind="add"``, with its role and domain) or a new key for one
    (``kind="rotate"``). Raises what creating or re-keying would, and :class:`StateConflict`
    (``request_pending``) while a request for that name waits."""
    require(access, Action.CLIENT_REQUEST)
    requester = _requester(access)
    with deployment.transaction() as connection:
        if kind == "add":
            assert role is not None
            clients.validate(deployment, connection, name=name, role=role, domain=domain)
            if clients_repo.by_name(connection, name=name) is not None:
                raise AlreadyExists("a client of that name already exists (name)")
        else:
            existing = clients.active_client(connection, name)
            role, domain = existing.role, existing.domain
        waiting = approvals_repo.pending_for(connection, name=name)
        if any(other.state_at(access.now) == "pending" for other in waiting):
            raise StateConflict("a request for that client waits already", code="request_pending")
        record = _sealed(
            deployment,
            RequestRecord(
                id=secrets.token_hex(16),
                kind=kind,
                name=name,
                role=role,
                domain=domain,
                requested_by=requester,
                requested_at=access.now,
                expires_at=access.now + timedelta(hours=deployment.settings.client_request_hours),
                state="pending",
                decided_by=None,
                decided_at=None,
                seal="",
            ),
        )
        approvals_repo.add(connection, record)
        deployment.record(
            connection,
            access,
            action=Action.CLIENT_REQUEST,
            domains=[domain] if domain else [],
            detail={"request": record.id, "kind": kind, "client": name, "role": role},
        )
    return record


def _pending(deployment: Deployment, connection: Connection, request_id: str) -> RequestRecord:
    record = (
        approvals_repo.by_id(connection, request_id=request_id) if request_id.isalnum() else None
    )
    if record is None:
        raise NotFound("unknown request", code="unknown_request")
    if not deployment.sealer().holds(_KIND, _fields(record), record.seal):
        raise RowTampered("this request was changed outside the service; it is not obeyed")
    if record.state != "pending":
        raise StateConflict(f"the request is {record.state}", code="request_decided")
    return record


@audited(Action.CLIENT_APPROVE, domain_arg=None)
def approve_request(deployment: Deployment, *, access: Access, request_id: str) -> IssuedKey:
    """Approve another admin's request: the client is created or re-keyed now, and its key is
    in the answer, once. Raises :class:`Forbidden` (``self_approval``) for one's own request,
    :class:`StateConflict` (``request_expired``, ``request_decided``)."""
    require(access, Action.CLIENT_APPROVE)
    with deployment.transaction() as connection:
        record = _pending(deployment, connection, request_id)
        if record.requested_by == access.actor:
            raise Forbidden(
                "a request is approved by another admin than its requester", code="self_approval"
            )
        if record.state_at(access.now) == "expired":
            raise StateConflict("the request has expired; ask again", code="request_expired")
        if record.kind == "add":
            issued = clients.create(
                deployment,
                connection,
                access,
                name=record.name,
                role=record.role,
                domain=record.domain,
            )
        else:
            target = clients.active_client(connection, record.name)
            issued = clients.rekey(deployment, connection, target)
        decided = replace(record, state="approved", decided_by=access.actor, decided_at=access.now)
        approvals_repo.decide(connection, _sealed(deployment, decided))
        deployment.record(
            connection,
            access,
            action=Action.CLIENT_APPROVE,
            domains=[record.domain] if record.domain else [],
            detail={
                "request": record.id,
                "kind": record.kind,
                "client": record.name,
                "role": record.role,
                "requested_by": record.requested_by,
            },
        )
    return issued


@audited(Action.CLIENT_REQUEST_LIST, domain_arg=None)
def list_requests(deployment: Deployment, *, access: Access) -> list[RequestRecord]:
    """Every request, oldest first (decided ones too, with who decided)."""
    require(access, Action.CLIENT_REQUEST_LIST)
    with deployment.transaction() as connection:
        found = approvals_repo.list_all(connection)
        deployment.record(connection, access, action=Action.CLIENT_REQUEST_LIST)
    return found
