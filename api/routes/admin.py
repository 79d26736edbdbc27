"""Admin routes: domains, keys and clients (never pseudonyms or mappings)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentAccess, DeploymentDep
from api.schemas import (
    ERRORS,
    ClientIn,
    ClientOut,
    DomainIn,
    DomainOut,
    IssuedKeyOut,
    KeyVersionOut,
)
from tiers import admin, clients
from tiers.storage.clients import ClientRecord
from tiers.storage.domains import DomainRecord

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["admin"])


def _domain(record: DomainRecord) -> DomainOut:
    return DomainOut(
        name=record.name, role=record.role, luhn=record.card_luhn, created_at=record.created_at
    )


def _client(record: ClientRecord) -> ClientOut:
    return ClientOut(
        name=record.name,
        role=record.role,
        domain=record.domain,
        active=record.active,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )


@router.get("/domains", name="domain_list", response_model=list[DomainOut])
def domains(deployment: DeploymentDep, access: CurrentAccess) -> list[DomainOut]:
    return [_domain(d) for d in admin.list_domains(deployment, access=access)]


@router.post("/domains", name="domain_add", response_model=DomainOut, status_code=201)
def add_domain(body: DomainIn, deployment: DeploymentDep, access: CurrentAccess) -> DomainOut:
    return _domain(
        admin.add_domain(
            deployment, access=access, name=body.name, role=body.role, card_luhn=body.luhn
        )
    )


@router.get("/domains/{name}/keys", name="key_list", response_model=list[KeyVersionOut])
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


@router.post("/domains/{name}/keys/rotate", name="key_rotate")
def rotate(name: str, deployment: DeploymentDep, access: CurrentAccess) -> dict[str, int]:
    result = admin.rotate_key(deployment, access=access, domain=name)
    return {
        "old_version": result.old_version,
        "new_version": result.new_version,
        "reindexed": result.reindexed,
    }


@router.post("/domains/{name}/keys/{version}/destroy", name="key_destroy")
def destroy(
    name: str, version: int, deployment: DeploymentDep, access: CurrentAccess
) -> dict[str, int]:
    result = admin.destroy_key(deployment, access=access, domain=name, version=version)
    return {"version": result.version, "unlinked": result.unlinked}


@router.get("/clients", name="client_list", response_model=list[ClientOut])
def client_list(deployment: DeploymentDep, access: CurrentAccess) -> list[ClientOut]:
    return [_client(c) for c in clients.list_clients(deployment, access=access)]


@router.post("/clients", name="client_add", response_model=IssuedKeyOut, status_code=201)
def client_add(body: ClientIn, deployment: DeploymentDep, access: CurrentAccess) -> IssuedKeyOut:
    """Create a client; its API key is in this response and nowhere else, ever."""
    issued = clients.add_client(
        deployment, access=access, name=body.name, role=body.role, domain=body.domain
    )
    return IssuedKeyOut(**_client(issued.client).model_dump(), api_key=issued.token)


@router.post("/clients/{name}/revoke", name="client_revoke", response_model=ClientOut)
def client_revoke(name: str, deployment: DeploymentDep, access: CurrentAccess) -> ClientOut:
    return _client(clients.revoke_client(deployment, access=access, name=name))


@router.post("/clients/{name}/rotate-key", name="client_rotate_key", response_model=IssuedKeyOut)
def client_rotate(name: str, deployment: DeploymentDep, access: CurrentAccess) -> IssuedKeyOut:
    issued = clients.rotate_client_key(deployment, access=access, name=name)
    return IssuedKeyOut(**_client(issued.client).model_dump(), api_key=issued.token)
