"""The operator's pages (admin clients): domains and key versions, clients and the requests for
them, file jobs and inbox backlogs, readiness. Every change asks first: a page says what will
happen, and only its form (with its CSRF token) does it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from api.console.web import Session, page, session_access
from api.deps import DeploymentDep
from errors import Forbidden, InvalidRequest, TiersError
from tiers import admin, approvals, clients
from tiers.vitals import read_vitals

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
_Name = Annotated[str, Path(max_length=32, pattern=r"^[A-Za-z0-9._-]+$")]


@router.get("/domains", name="console_domains", response_class=HTMLResponse)
def domains(request: Request, deployment: DeploymentDep, _session: Session) -> Response:
    """Every domain and its key versions (each listing is an entry of the log)."""
    access = session_access(request)
    found = admin.list_domains(deployment, access=access)
    versions = {d.name: admin.list_keys(deployment, access=access, domain=d.name) for d in found}
    return page(request, "domains.html", {"domains": found, "versions": versions})


def _consequences(operation: str, domain: str, version: int | None, overlap_days: int) -> list[str]:
    """What a key operation will do, in words, for its confirmation page."""
    if operation == "rotate":
        return [
            f"A new key version becomes the active one of {domain}; every pseudonym of the "
            "domain is derived anew under it, in one transaction.",
            f"The version active now becomes verify-only: its pseudonyms keep resolving for "
            f"{overlap_days} days, until it is retired.",
            "The domain's holder is sent the translation of old to new pseudonyms.",
        ]
    if operation == "retire":
        return [
            f"Version {version} of {domain} stops resolving: pseudonyms made with it are no "
            "longer recognised, and its key is destroyed.",
            "Refused while the overlap after its rotation has not passed.",
        ]
    return [
        f"Version {version} of {domain} is destroyed (crypto-shredding): its key is erased and "
        "every index entry made with it; no one can resolve its pseudonyms again.",
        "This cannot be undone. The active version cannot be destroyed.",
    ]


@router.get(
    "/domains/{name}/keys/{operation}", name="console_key_confirm", response_class=HTMLResponse
)
def key_confirm(
    request: Request,
    name: _Name,
    operation: Annotated[str, Path(pattern=r"^(rotate|retire|destroy)$")],
    deployment: DeploymentDep,
    _session: Session,
    version: int | None = None,
) -> Response:
    """The confirmation step: what will happen, and the form that does it."""
    return page(
        request,
        "confirm_key.html",
        {
            "domain": name,
            "operation": operation,
            "version": version,
            "consequences": _consequences(
                operation, name, version, deployment.settings.rotation_overlap_days
            ),
        },
    )


@router.post("/domains/{name}/keys/{operation}", name="console_key_do")
def key_do(
    request: Request,
    name: _Name,
    operation: Annotated[str, Path(pattern=r"^(rotate|retire|destroy)$")],
    deployment: DeploymentDep,
    _session: Session,
    version: Annotated[int | None, Form()] = None,
) -> Response:
    access = session_access(request)
    done: dict[str, Any]
    if operation == "rotate":
        rotation = admin.rotate_key(deployment, access=access, domain=name)
        done = {"old": rotation.old_version, "new": rotation.new_version}
    else:
        if version is None:
            raise InvalidRequest("the version field is required", code="invalid_request")
        act = admin.retire_key if operation == "retire" else admin.destroy_key
        shredded = act(deployment, access=access, domain=name, version=version)
        done = {"version": shredded.version, "unlinked": shredded.unlinked}
    return page(request, "done_key.html", {"domain": name, "operation": operation, **done})


@router.get("/clients", name="console_clients", response_class=HTMLResponse)
def client_list(request: Request, deployment: DeploymentDep, _session: Session) -> Response:
    access = session_access(request)
    return page(
        request,
        "clients.html",
        {
            "clients": clients.list_clients(deployment, access=access),
            "requests": approvals.list_requests(deployment, access=access),
        },
    )


@router.post("/clients/request", name="console_client_request")
def client_request(
    request: Request,
    deployment: DeploymentDep,
    _session: Session,
    kind: Annotated[str, Form(pattern=r"^(add|rotate)$")],
    name: Annotated[str, Form(max_length=32)],
    role: Annotated[str | None, Form(max_length=16)] = None,
    domain: Annotated[str | None, Form(max_length=32)] = None,
) -> Response:
    """Ask for a new client or a new key: another admin approves it (four eyes)."""
    record = approvals.request_client(
        deployment,
        access=session_access(request),
        kind=kind,
        name=name,
        role=role or None if kind == "add" else None,
        domain=domain or None if kind == "add" else None,
    )
    return page(request, "done_client.html", {"requested": record})


@router.post("/clients/requests/{request_id}/approve", name="console_client_approve")
def client_approve(
    request: Request,
    request_id: Annotated[str, Path(max_length=32, pattern=r"^[0-9a-f]+$")],
    deployment: DeploymentDep,
    _session: Session,
) -> Response:
    """Approve another admin's request; the new key is shown once, on this page only."""
    issued = approvals.approve_request(
        deployment, access=session_access(request), request_id=request_id
    )
    return page(request, "done_client.html", {"issued": issued})


@router.get("/clients/{name}/revoke", name="console_client_revoke_confirm")
def client_revoke_confirm(
    request: Request, name: _Name, deployment: DeploymentDep, _session: Session
) -> Response:
    return page(request, "confirm_revoke.html", {"name": name})


@router.post("/clients/{name}/revoke", name="console_client_revoke")
def client_revoke(
    request: Request, name: _Name, deployment: DeploymentDep, _session: Session
) -> Response:
    revoked = clients.revoke_client(deployment, access=session_access(request), name=name)
    return page(request, "done_client.html", {"revoked": revoked})


@router.get("/service", name="console_service", response_class=HTMLResponse)
def service(request: Request, deployment: DeploymentDep, session: Session) -> Response:
    """Readiness of the database, the keys and the checkpoint store; the witnesses; file jobs
    and inbox backlogs (counts and names of domains only: no data, so no entry of the log)."""
    if session.client.role != "admin":
        raise Forbidden("the service's page is for admins")
    problems: list[str] = []
    try:
        deployment.check_ready()
    except TiersError as error:
        problems.append(error.code)
    if deployment.log_fault is not None:
        problems.append(deployment.log_fault.code)
    vitals = read_vitals(deployment, now=datetime.now(UTC), recent_jobs=50)
    witnesses = deployment.witness_status()
    return page(
        request,
        "service.html",
        {"problems": problems, "vitals": vitals, "witnesses": witnesses.as_dict()},
    )
