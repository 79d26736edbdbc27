"""Liveness and readiness (not logged: they touch no data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tiers.errors import TiersError

router = APIRouter(tags=["health"])


@router.get("/healthz", name="healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", name="readyz", responses={503: {"description": "not ready"}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers and the keyring can be unwrapped."""
    try:
        request.app.state.service.deployment().check_ready()
    except TiersError as error:
        return JSONResponse({"status": "unavailable", "code": error.code}, status_code=503)
    return JSONResponse({"status": "ready"})
