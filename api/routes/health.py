"""Liveness and readiness (not logged: they touch no data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from errors import TiersError

router = APIRouter(tags=["health"])


@router.get("/healthz", name="healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", name="readyz", responses={503: {"description": "not ready"}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, the keyring can be unwrapped and the access log can be
    written (its checkpoint store works and the log is consistent with it). The witnesses'
    quorum is reported, not required: a witness that is down does not stop the service."""
    try:
        deployment = request.app.state.service.deployment()
        deployment.check_ready()
        if deployment.log_fault is not None:
            raise deployment.log_fault
        witnesses = deployment.witness_status()
    except TiersError as error:
        return JSONResponse({"status": "unavailable", "code": error.code}, status_code=503)
    return JSONResponse({"status": "ready", "witnesses": witnesses.as_dict()})
