"""The auditor's pages: the log, an entry and its proof, verification, a subject, alerts,
changes and the report. Each page that shows data is logged by the core operation it calls,
under the session's client and purpose."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from api.console.verifying import Runs
from api.console.web import HEADERS, Session, page, session_access
from api.deps import DeploymentDep
from audit import Action, parse_entry, render_report, verify_inclusion
from audit.actions import CHANGE_EVENTS
from audit.entry import OUTCOMES
from audit.report import Report, report_body
from errors import InvalidRequest
from tiers import alerts, audit_ops, log_views
from tiers.deployment import Deployment
from tiers.identifiers import KINDS

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
RUNS = Runs()
_Text = Annotated[str | None, Query(max_length=128)]


def _when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name} is not a date or a date-time", code="bad_time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value else None


@router.get("/log", name="console_log", response_class=HTMLResponse)
def log(
    request: Request,
    deployment: DeploymentDep,
    _session: Session,
    since: _Text = None,
    until: _Text = None,
    actor: _Text = None,
    role: _Text = None,
    action: _Text = None,
    domain: _Text = None,
    outcome: _Text = None,
    purpose: _Text = None,
    after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=log_views.MAX_PAGE)] = 50,
) -> Response:
    """The access log, filtered, a page at a time."""
    asked = {
        "since": since,
        "until": until,
        "actor": actor,
        "role": role,
        "action": action,
        "domain": domain,
        "outcome": outcome,
        "purpose": purpose,
    }
    filters = log_views.LogFilter(
        since=_when(since, "since"),
        until=_when(until, "until"),
        actor=_blank(actor),
        role=_blank(role),
        action=_blank(action),
        domain=_blank(domain),
        outcome=_blank(outcome),
        purpose=_blank(purpose),
    )
    found = log_views.read_page(
        deployment, access=session_access(request), filters=filters, after=after, limit=limit
    )
    kept = {k: v for k, v in asked.items() if v}
    following = (
        None
        if found.next_after is None
        else request.url.include_query_params(after=found.next_after, limit=limit)
    )
    return page(
        request,
        "log.html",
        {
            "entries": found.entries,
            "asked": kept,
            "next": None if following is None else f"{following.path}?{following.query}",
            "actions": sorted(a.value for a in Action),
            "outcomes": OUTCOMES,
            "roles": ("partner", "hub", "auditor", "admin", "operator"),
        },
    )


@router.get("/log/{seq}", name="console_entry", response_class=HTMLResponse)
def entry(request: Request, seq: int, deployment: DeploymentDep, _session: Session) -> Response:
    """One entry, its inclusion proof checked against the checkpoint that covers it, and the
    newest checkpoint as its witnesses cosigned it."""
    deployment.sign_pending()  # the entry may be newer than the last checkpoint
    access = session_access(request)
    proof = audit_ops.prove(deployment, access=access, seq=seq)
    checkpoint = proof.checkpoints[0]
    assert proof.leaf is not None and proof.entry is not None
    verify_inclusion(seq, checkpoint.tree_size, proof.leaf, proof.nodes, checkpoint.root)
    note = audit_ops.latest_note(deployment, access=access)
    return page(
        request,
        "entry.html",
        {
            "entry": parse_entry(proof.entry),
            "leaf": proof.leaf.hex(),
            "nodes": [node.hex() for node in proof.nodes],
            "checkpoint": checkpoint,
            "root": base64.b64encode(checkpoint.root).decode(),
            "note": note,
        },
    )


@router.get("/verify", name="console_verify", response_class=HTMLResponse)
def verify(request: Request, session: Session, run: _Text = None) -> Response:
    """Start a verification (the form), or follow one (``run``): the page reloads itself
    every second until the verification ends, then names the first bad entry, if any."""
    found = RUNS.get(run, session.client.id) if run else None
    return page(request, "verify.html", {"run": found, "run_id": run if found else None})


@router.post("/verify", name="console_verify_start")
def verify_start(request: Request, deployment: DeploymentDep, _session: Session) -> Response:
    run_id = RUNS.start(deployment, session_access(request))
    return RedirectResponse(f"/console/verify?run={run_id}", status_code=303, headers=HEADERS)


@router.get("/subject", name="console_subject", response_class=HTMLResponse)
def subject_form(request: Request, deployment: DeploymentDep, _session: Session) -> Response:
    return page(request, "subject.html", {"kinds": sorted(KINDS), "entries": None})


@router.post("/subject", name="console_subject_lookup", response_class=HTMLResponse)
async def subject(
    request: Request,
    deployment: DeploymentDep,
    _session: Session,
    domain: Annotated[str, Form(max_length=32)],
    kind: Annotated[str, Form(max_length=32)],
    value: Annotated[str, Form(max_length=512)],
) -> Response:
    """Entries about one customer. The identifier is keyed in memory, never stored, logged or
    shown again: the page names the domain and kind only."""
    found = await run_in_threadpool(
        audit_ops.lookup_subject,
        deployment,
        access=session_access(request),
        domain=domain,
        kind=kind,
        value=value,
    )
    return page(
        request,
        "subject.html",
        {"kinds": sorted(KINDS), "entries": found, "domain": domain, "kind": kind},
    )


@router.get("/alerts", name="console_alerts", response_class=HTMLResponse)
def alert_list(
    request: Request, deployment: DeploymentDep, _session: Session, hours: int = 24
) -> Response:
    access = session_access(request)
    hours = min(max(hours, 1), 24 * 31)
    found = alerts.find_alerts(
        deployment, access=access, since=access.now - timedelta(hours=hours), until=access.now
    )
    return page(request, "alerts.html", {"alerts": found, "hours": hours})


@router.get("/changes", name="console_changes", response_class=HTMLResponse)
def changes(
    request: Request,
    deployment: DeploymentDep,
    _session: Session,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Every change to domains, keys, clients and the policy, oldest first, by pages."""
    found = log_views.read_page(
        deployment,
        access=session_access(request),
        filters=log_views.LogFilter(actions=CHANGE_EVENTS),
        after=after,
        limit=100,
    )
    following = None if found.next_after is None else f"/console/changes?after={found.next_after}"
    return page(request, "changes.html", {"entries": found.entries, "next": following})


def _report(
    request: Request, deployment: Deployment, since: str | None, until: str | None
) -> Report:
    """The report of the period asked (default: the last 30 days), as the session."""
    access = session_access(request)
    start = _when(since, "since") or (access.now - timedelta(days=30)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    end = _when(until, "until") or access.now
    return log_views.build_report(deployment, access=access, since=start, until=end)


@router.get("/report", name="console_report", response_class=HTMLResponse)
def report(
    request: Request,
    deployment: DeploymentDep,
    _session: Session,
    since: _Text = None,
    until: _Text = None,
) -> Response:
    """The access report of a period, with its download."""
    found = _report(request, deployment, since, until)
    query = urlencode({"since": found.since.isoformat(), "until": found.until.isoformat()})
    return page(
        request,
        "report.html",
        {
            # audit.report escapes every value it writes
            "body": Markup(report_body(found)),  # noqa: S704  # nosec B704
            "since": found.since.date().isoformat(),
            "until": found.until.date().isoformat(),
            "download": f"/console/report/download?{query}",
        },
    )


@router.get("/report/download", name="console_report_download")
def report_download(
    request: Request,
    deployment: DeploymentDep,
    _session: Session,
    since: _Text = None,
    until: _Text = None,
) -> Response:
    """The report as one HTML file to hand to a regulator."""
    found = _report(request, deployment, since, until)
    period = f"{found.since.date().isoformat()}-{found.until.date().isoformat()}"
    return HTMLResponse(
        render_report(found),
        headers={
            **HEADERS,
            "Content-Disposition": f'attachment; filename="tiers-access-report-{period}.html"',
        },
    )
