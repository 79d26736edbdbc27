"""Admin routes: domains, keys and clients (never pseudonyms or mappings)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from api.actions import logged_as
from api.deps import CurrentAccess, DeploymentDep
from api.schemas import (
    ERRORS,
    ClientIn,
    ClientOut,
    ClientRequestOut,
    DomainIn,
    DomainOut,
    IssuedKeyOut,
    KeyVersionOut,
)
from audit import Action
from tiers import admin, approvals, clients
from tiers.admin import DomainRecord
from tiers.approvals import RequestRecord
from tiers.clients import ClientRecord

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["admin"])


def _domain(record: DomainRecord) -> DomainOut:
    return DomainOut(
        name=record.name, role=record.role, luhn=record.card_luhn,
        blind_only=record.blind_only, created_at=record.created_at,
    )  # fmt: skip


def _client(record: ClientRecord) -> ClientOut:
    return ClientOut(
        name=record.name,
        role=record.role,
        domain=record.domain,
        active=record.active,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )


@router.get(
    "/domains",
    name="domain_list",
    openapi_extra=logged_as(Action.DOMAIN_LIST),
    response_model=list[DomainOut],
)
def domains(deployment: DeploymentDep, access: CurrentAccess) -> list[DomainOut]:
    return [_domain(d) for d in admin.list_domains(deployment, access=access)]


@router.post(
    "/domains",
    name="domain_add",
    openapi_extra=logged_as(Action.DOMAIN_ADD),
    response_model=DomainOut,
    status_code=201,
)
def add_domain(body: DomainIn, deployment: DeploymentDep, access: CurrentAccess) -> DomainOut:
    return _domain(
        admin.add_domain(
            deployment,
            access=access,
            name=body.name,
            role=body.role,
            card_luhn=body.luhn,
            blind_only=body.blind_only,
        )
    )


@router.get(
    "/domains/{name}/keys",
    name="key_list",
    openapi_extra=logged_as(Action.KEY_LIST),
    response_model=list[KeyVersionOut],
)
def keys(name: str, deployment: DeploymentDep, access: CurrentAccess) -> list[KeyVersionOut]:
    """Versions, states and dates: never key material."""
    return [
        KeyVersionOut(
            version=v.version,
            state=v.state.value,
            created_at=v.created_at,
            state_changed_at=v.state_changed_at,
        )
        for v in admin.list_keys(deployment, access=access, domain=name)
    ]


@router.post(
    "/domains/{name}/keys/rotate", name="key_rotate", openapi_extra=logged_as(Action.KEY_ROTATE)
)
def rotate(name: str, deployment: DeploymentDep, access: CurrentAccess) -> dict[str, int]:
    result = admin.rotate_key(deployment, access=access, domain=name)
    return {
        "old_version": result.old_version,
        "new_version": result.new_version,
        "reindexed": result.reindexed,
    }


@router.post(
    "/domains/{name}/keys/{version}/destroy",
    name="key_destroy",
    openapi_extra=logged_as(Action.KEY_DESTROY),
)
def destroy(
    name: str, version: int, deployment: DeploymentDep, access: CurrentAccess
) -> dict[str, int]:
    result = admin.destroy_key(deployment, access=access, domain=name, version=version)
    return {"version": result.version, "unlinked": result.unlinked}


@router.get(
    "/clients",
    name="client_list",
    openapi_extra=logged_as(Action.CLIENT_LIST),
    response_model=list[ClientOut],
)
def client_list(deployment: DeploymentDep, access: CurrentAccess) -> list[ClientOut]:
    return [_client(c) for c in clients.list_clients(deployment, access=access)]


def _request(record: RequestRecord, now: datetime) -> ClientRequestOut:
    return ClientRequestOut(
        id=record.id,
        kind=record.kind,
        name=record.name,
        role=record.role,
        domain=record.domain,
        requested_by=record.requested_by,
        requested_at=record.requested_at,
        expires_at=record.expires_at,
        state=record.state_at(now),
        decided_by=record.decided_by,
    )


@router.post(
    "/clients",
    name="client_add",
    openapi_extra=logged_as(Action.CLIENT_ADD),
    response_model=ClientRequestOut,
    status_code=202,
)
def client_add(
    body: ClientIn, deployment: DeploymentDep, access: CurrentAccess
) -> ClientRequestOut:
    """Ask for a new client: another admin approves it (`POST
    /v1/clients/requests/{id}/approve`), and gets its API key, once."""
    record = approvals.request_client(
        deployment,
        access=access,
        kind="add",
        name=body.name,
        role=body.role,
        domain=body.domain,
    )
    return _request(record, access.now)


@router.get(
    "/clients/requests",
    name="client_request_list",
    openapi_extra=logged_as(Action.CLIENT_REQUEST_LIST),
    response_model=list[ClientRequestOut],
)
def client_requests(deployment: DeploymentDep, access: CurrentAccess) -> list[ClientRequestOut]:
    """Every request for a client or a key, oldest first, with who decided it."""
    return [_request(r, access.now) for r in approvals.list_requests(deployment, access=access)]


@router.post(
    "/clients/requests/{request_id}/approve",
    name="client_approve",
    openapi_extra=logged_as(Action.CLIENT_APPROVE),
    response_model=IssuedKeyOut,
)
def client_approve(
    request_id: str, deployment: DeploymentDep, access: CurrentAccess
) -> IssuedKeyOut:
    """Approve another admin's request (never one's own): the client is created or re-keyed
    now, and its API key is in this response and nowhere else, ever."""
    issued = approvals.approve_request(deployment, access=access, request_id=request_id)
    return IssuedKeyOut(**_client(issued.client).model_dump(), api_key=issued.token)


@router.post(
    "/clients/{name}/revoke",
    name="client_revoke",
    openapi_extra=logged_as(Action.CLIENT_REVOKE),
    response_model=ClientOut,
)
def client_revoke(name: str, deployment: DeploymentDep, access: CurrentAccess) -> ClientOut:
    return _client(clients.revoke_client(deployment, access=access, name=name))


@router.post(
    "/clients/{name}/rotate-key",
    name="client_rotate_key",
    openapi_extra=logged_as(Action.CLIENT_ROTATE_KEY),
    response_model=ClientRequestOut,
    status_code=202,
)
def client_rotate(name: str, deployment: DeploymentDep, access: CurrentAccess) -> ClientRequestOut:
    """Ask for a new key for a client: another admin approves, and gets the key, once."""
    record = approvals.request_client(deployment, access=access, kind="rotate", name=name)
    return _request(record, access.now)
