"""One mapping from core errors to HTTP: status, ``{"error": {"code", "message"}}`` body.

No stack trace and no request data ever reach a response: messages are the core's, which never
quote identifiers, and validation errors say where and what, never the value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api.actions import action_of
from errors import (
    AuditIntegrityError,
    DomainHidden,
    InvalidRequest,
    RateLimited,
    TiersError,
    Unauthorised,
)
from tiers.auditing import Access, is_recorded, mark_recorded, record_failure
from tiers.budgets import BudgetExhausted
from tiers.refusals import Refusal

__all__ = [
    "OneLine",
    "caller_address",
    "error_body",
    "install_error_handlers",
    "retry_after",
    "route_template",
    "status_of",
]

_log = logging.getLogger("tiers.api")


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` of a wait of ``seconds``: whole seconds, rounded up, so that a
    client that waits as told is not refused again for coming back early (at least 1)."""
    return str(max(1, math.ceil(seconds)))


def status_of(error: TiersError) -> int:
    """The HTTP status of ``error``: its class's (see :mod:`errors.codes`)."""
    return error.status


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


async def _audit_refusal(request: Request, error: BaseException) -> None:
    """Log a refusal the core did not log itself (purpose, validation, routing, the client's
    request rate: that one through the tally of refusals, so that a flood does not flood the
    log; see :mod:`tiers.refusals`)."""
    if is_recorded(error):
        return
    service = getattr(request.app.state, "service", None)
    deployment = service.opened() if service is not None else None
    access: Access | None = getattr(request.state, "access", None)
    action = action_of(request.scope.get("route"))
    if service is None or deployment is None or access is None:
        return
    mark_recorded(error)
    if isinstance(error, RateLimited) and not isinstance(error, BudgetExhausted):
        refusal = Refusal(access, action, error.code, caller_address(request.scope))
        await service.trace(deployment, refusal)
        return
    await run_in_threadpool(record_failure, deployment.engine, access, action=action, error=error)


def caller_address(scope: MutableMapping[str, Any]) -> str:
    """The address the request came from, as the server saw it."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def route_template(request: Request) -> str:
    """The route's template (``/v1/links/{linking_key}``), never the path itself: a path can hold a
    hub linking key, which no plain log line may carry."""
    return str(getattr(request.scope.get("route"), "path", "(no route)"))


def _console_errors(request: Request) -> Callable[[Request, TiersError], Response] | None:
    """The console's error page (api.console), for a request of the console."""
    if not request.url.path.startswith("/console/"):
        return None
    render: Callable[[Request, TiersError], Response] | None
    render = getattr(request.app.state, "console_errors", None)
    return render


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TiersError)
    async def tiers_error(request: Request, error: TiersError) -> Response:
        await _audit_refusal(request, error)
        console = _console_errors(request)
        if console is not None:
            return console(request, error)
        headers: dict[str, str] = {}
        code, message = error.code, error.message
        if isinstance(error, DomainHidden):
            # Exactly what an unknown domain gets: nothing tells the two apart.
            code = "unknown_domain"
        if isinstance(error, Unauthorised):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(error, RateLimited):
            headers["Retry-After"] = retry_after(error.retry_after)
        extra = {"seq": error.seq} if isinstance(error, AuditIntegrityError) else {}
        return JSONResponse(
            error_body(code, message, **extra), status_code=status_of(error), headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # Never echo the input: FastAPI's default body includes it, identifiers and all.
        problems = [
            {"loc": [str(part) for part in item.get("loc", ())], "type": item.get("type", "")}
            for item in error.errors()
        ]
        refusal = InvalidRequest("invalid request body", code="invalid_request")
        await _audit_refusal(request, refusal)
        console = _console_errors(request)
        if console is not None:
            return console(request, refusal)
        return JSONResponse(
            error_body(
                "invalid_request", "the request does not match the schema", problems=problems
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            error.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(error.detail)),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, ClientDisconnect):  # the caller went away: nothing to answer
            _log.warning("client disconnected on %s", route_template(request))
            await _audit_refusal(
                request, TiersError("the client went away", code="client_disconnected")
            )
            return JSONResponse(error_body("client_disconnected", "client went away"), 499)
        _log.error("internal error on %s: %s", route_template(request), type(error).__name__)
        await _audit_refusal(request, error)
        return JSONResponse(error_body("internal", "internal error"), status_code=500)


class OneLine(logging.Filter):
    """Every record one line, without a traceback: the exception's type only, since its
    message or its frames could quote data. Installed on the server's error logger, which
    prints the exceptions the application re-raises after answering them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            kind = type(record.exc_info[1]).__name__
            record.msg = f"{record.getMessage().strip()} ({kind})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True
