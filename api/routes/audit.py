"""Auditor routes: the access log, mirroring the `tiers audit` commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse

from api.actions import logged_as
from api.deps import (
    CurrentAccess,
    CurrentClient,
    DataAccess,
    DeploymentDep,
    PurposeHeader,
    access_with,
)
from api.schemas import ERRORS, AlertOut, AuditSubjectRequest, CheckpointOut, VerificationOut
from audit import Action, render_report
from tiers import alerts, audit_ops, log_views

router = APIRouter(prefix="/v1/audit", responses=ERRORS, tags=["auditor"])


_Name = Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9:._@-]+$")]


@router.get("/entries", name="audit_read", openapi_extra=logged_as(Action.AUDIT_READ))
def entries(
    request: Request,
    response: Response,
    deployment: DeploymentDep,
    access: DataAccess,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: _Name = None,
    role: _Name = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")] = None,
    domain: _Name = None,
    outcome: Annotated[str | None, Query(pattern=r"^(ok|denied|error)$")] = None,
    purpose: _Name = None,
    after: Annotated[int | None, Query(ge=0, description="the cursor: the last seq seen")] = None,
    limit: Annotated[int, Query(ge=1, le=log_views.MAX_PAGE)] = log_views.DEFAULT_PAGE,
) -> list[dict[str, Any]]:
    """One page of entries, oldest first (each as its canonical fields), at most ``limit``.
    When more may follow, the answer carries ``Link: <…?after=N…>; rel="next"`` (RFC 8288)
    and ``X-Next-After: N``; follow it until it is absent. ``purpose`` filters on the purpose
    the entries recorded (the reader's own goes in ``X-Purpose``)."""
    filters = log_views.LogFilter(
        since=since,
        until=until,
        actor=actor,
        role=role,
        action=action,
        domain=domain,
        outcome=outcome,
        purpose=purpose,
    )
    page = log_views.read_page(
        deployment, access=access, filters=filters, after=after, limit=limit
    )
    if page.next_after is not None:
        following = request.url.include_query_params(after=page.next_after)
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
        response.headers["X-Next-After"] = str(page.next_after)
    return [entry.as_dict() for entry in page.entries]


@router.get(
    "/report",
    name="audit_report",
    openapi_extra=logged_as(Action.AUDIT_REPORT),
    response_model=None,
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
)
def report(
    deployment: DeploymentDep,
    access: DataAccess,
    since: datetime,
    until: datetime,
    format: Annotated[str, Query(pattern=r"^(html|json)$")] = "json",
) -> HTMLResponse | dict[str, Any]:
    """The access report of ``[since, until)``: the log's verification; calls and identifiers
    processed per day, actor, action, domain and purpose; refusals; alerts; changes to
    domains, keys, clients and the policy. ``format=html`` gives the document to hand to a
    regulator (charts embedded, no external resource)."""
    found = log_views.build_report(deployment, access=access, since=since, until=until)
    if format == "html":
        return HTMLResponse(
            render_report(found),
            headers={"Content-Disposition": 'attachment; filename="tiers-access-report.html"'},
        )
    return found.as_dict()


@router.get(
    "/verify",
    name="audit_verify",
    openapi_extra=logged_as(Action.AUDIT_VERIFY),
    response_model=VerificationOut,
)
def verify(deployment: DeploymentDep, access: CurrentAccess) -> VerificationOut:
    """Verify the stored log; a damaged log answers 409 with the first bad entry's `seq`."""
    result = audit_ops.verify_stored(deployment, access=access)
    return VerificationOut(
        intact=True,
        summary=result.summary(),
        first_seq=result.first_seq,
        entries=result.entries,
        tree_size=result.tree_size,
        checkpoints=result.checkpoints,
        key=result.key,
    )


@router.get(
    "/alerts",
    name="audit_alerts",
    openapi_extra=logged_as(Action.AUDIT_ALERTS),
    response_model=list[AlertOut],
)
def alert_list(
    deployment: DeploymentDep,
    access: DataAccess,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AlertOut]:
    """Signs of a dictionary attack or of key guessing in the log, per actor and clock hour
    (default: the last 24 hours), against the deployment's thresholds."""
    found = alerts.find_alerts(deployment, access=access, since=since, until=until)
    return [
        AlertOut(
            kind=a.kind, actor=a.actor, hour=a.hour, observed=a.observed, threshold=a.threshold
        )
        for a in found
    ]


@router.get(
    "/checkpoint",
    name="audit_checkpoint_read",
    openapi_extra=logged_as(Action.AUDIT_CHECKPOINT_READ),
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def latest_checkpoint(deployment: DeploymentDep, access: CurrentAccess) -> PlainTextResponse:
    """The newest checkpoint kept outside the database, as a C2SP signed note (tlog-checkpoint)
    with the witnesses' cosignatures. It holds a size and hashes only: any role may read it."""
    note = audit_ops.latest_note(deployment, access=access)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get(
    "/checkpoints",
    name="audit_checkpoints",
    openapi_extra=logged_as(Action.AUDIT_CHECKPOINTS),
    response_model=list[CheckpointOut],
)
def checkpoints(deployment: DeploymentDep, access: CurrentAccess) -> list[CheckpointOut]:
    """Every signed checkpoint (Ed25519), oldest first."""
    return [
        CheckpointOut(**c.as_dict())  # type: ignore[arg-type]
        for c in audit_ops.read_checkpoints(deployment, access=access)
    ]


@router.get(
    "/export",
    name="audit_export",
    openapi_extra=logged_as(Action.AUDIT_EXPORT),
    response_class=FileResponse,
)
def export(deployment: DeploymentDep, access: DataAccess, tasks: BackgroundTasks) -> FileResponse:
    """A self-contained bundle, verifiable offline with `tiers audit verify-export`."""
    directory = deployment.settings.home / "exports"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{uuid.uuid4().hex}.json"
    audit_ops.export_log(deployment, access=access, output=path)
    tasks.add_task(path.unlink, missing_ok=True)
    return FileResponse(path, media_type="application/json", filename="tiers-audit-export.json")


@router.post("/subject", name="audit_subject", openapi_extra=logged_as(Action.AUDIT_SUBJECT))
def subject(
    request: Request,
    body: AuditSubjectRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> list[dict[str, Any]]:
    """Entries about one customer, including those naming them as the other card of an
    association: the identifier is pseudonymised in memory, turned into its subject references
    and dropped; the look-up is logged. A purpose is required."""
    access = access_with(request, body.purpose or purpose, required=True)
    found = audit_ops.lookup_subject(
        deployment, access=access, domain=body.domain, kind=body.kind, value=body.value
    )
    return [entry.as_dict() for entry in found]


@router.get("/proof", name="audit_proof", openapi_extra=logged_as(Action.AUDIT_PROOF))
def proof(
    deployment: DeploymentDep,
    access: DataAccess,
    seq: Annotated[int | None, Query(ge=0)] = None,
    from_size: Annotated[int | None, Query(ge=1)] = None,
    to_size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """An inclusion (`seq`) or consistency (`from_size`) proof against signed checkpoints."""
    return audit_ops.prove(
        deployment, access=access, seq=seq, old_size=from_size, new_size=to_size
    ).as_dict()
