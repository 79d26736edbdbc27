"""The console at ``/console``: the auditor's and the operator's pages in a browser.

Sign-in exchanges an auditor's or an admin's API key, and a purpose, for a session cookie
(:mod:`tiers.console_sessions`); partner and hub keys are refused, and each refusal is logged.
Key verifications at sign-in are limited per address like those at the API's door. Every form
carries a CSRF token (asgi-csrf, signed with a secret derived from the master key, so that
every worker and node checks alike); a form posted without it is refused before any route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from asgi_csrf import asgi_csrf
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.console import auditor, operator
from api.console.web import COOKIE, HEADERS, SignInNeeded, error_page, page, secure
from api.deps import DeploymentDep
from api.errors import caller_address, status_of
from api.gate import answer, refusal_of
from audit import Action
from errors import TiersError
from tiers.auditing import Access, purpose_or_unspecified
from tiers.console_sessions import ConsoleSession, session_of, sign_in, sign_out
from tiers.ratelimit import RateLimiter
from tiers.settings import Settings

__all__ = ["install_console"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("", name="console_home")
def home(request: Request) -> Response:
    return RedirectResponse("/console/log", status_code=303, headers=HEADERS)


@router.get("/login", name="console_login")
def login_form(request: Request) -> Response:
    return page(request, "login.html", {"error": None})


@router.post("/login", name="console_sign_in")
async def login(
    request: Request,
    deployment: DeploymentDep,
    api_key: Annotated[str, Form(max_length=256)],
    purpose: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Verify the key (Argon2, limited per address), open a session for an auditor or an
    admin, and set its cookie; anything else is refused with the same form and logged."""
    service = request.app.state.service
    limiter: RateLimiter = request.app.state.console_limiter
    address = caller_address(request.scope)
    try:
        limiter.check(address)
        client = await run_in_threadpool(service.authenticator().authenticate, api_key)
    except TiersError as error:
        refusal = refusal_of(request.scope, api_key, error, Action.CONSOLE_SIGN_IN)
        await service.trace(deployment, refusal)
        return page(request, "login.html", {"error": error}, status=status_of(error))
    access = Access(
        actor=client.name,
        role=client.role,
        purpose=purpose_or_unspecified(purpose),
        now=datetime.now(UTC),
        request_id=request.state.request_id,
        domain=client.domain,
        client_id=client.id,
    )
    try:
        token = await run_in_threadpool(sign_in, deployment, access=access, client=client)
    except TiersError as error:  # a partner's or the hub's key, no purpose: logged
        return page(request, "login.html", {"error": error}, status=status_of(error))
    response = RedirectResponse("/console/log", status_code=303, headers=HEADERS)
    response.set_cookie(
        COOKIE,
        token,
        max_age=deployment.settings.console_session_hours * 3600,
        path="/console",
        secure=secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout", name="console_sign_out")
async def logout(request: Request, deployment: DeploymentDep) -> Response:
    token = request.cookies.get(COOKIE)
    now = datetime.now(UTC)
    session: ConsoleSession | None = await run_in_threadpool(session_of, deployment, token, now=now)
    if session is not None and token:
        access = session.access(now, request.state.request_id)
        await run_in_threadpool(sign_out, deployment, access=access, token=token)
    response = RedirectResponse("/console/login", status_code=303, headers=HEADERS)
    response.delete_cookie(
        COOKIE, path="/console", secure=secure(request), httponly=True, samesite="strict"
    )
    return response


async def _csrf_refused(scope: Scope, send: Any, message_id: Any) -> None:
    body = (
        b"<!doctype html><title>Refused</title><p>This form was sent without its CSRF token "
        b"(code csrf_failed). Go back, reload the page and send it again.</p>"
    )
    headers = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/html; charset=utf-8"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ConsoleCsrf:
    """asgi-csrf in front of the console's paths only, built on the first console request
    (its secret derives from the master key, which the deployment holds once it is open)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._wrapped: dict[bool, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console/"):
            await self.app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"
        wrapped = self._wrapped.get(over_tls)
        if wrapped is None:
            service = scope["app"].state.service
            try:
                deployment = service.opened() or await run_in_threadpool(service.deployment)
            except TiersError as error:  # the database is down: 503, as everywhere
                await answer(scope, receive, send, error)
                return
            secret = deployment.master.derived(b"console csrf").hex()
            wrapped = self._wrapped[over_tls] = asgi_csrf(
                self.app,
                signing_secret=secret,
                cookie_name="tiers_csrf",
                cookie_path="/console",
                cookie_secure=over_tls,
                cookie_samesite="Strict",
                always_protect={"/console/login", "/console/logout"},
                send_csrf_failed=_csrf_refused,
            )
        await wrapped(scope, receive, send)


def install_console(app: FastAPI, settings: Settings) -> None:
    """The console's routes, assets, CSRF check, sign-in redirection and error pages."""
    app.state.console_limiter = RateLimiter(
        rate=settings.address_verifications_per_second,
        burst=settings.address_verifications_burst,
    )
    for each in (router, auditor.router, operator.router):
        app.include_router(each)
    app.mount(
        "/console/static",
        StaticFiles(directory=Path(__file__).with_name("static")),
        name="console_static",
    )

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, _error: SignInNeeded) -> Response:
        return RedirectResponse("/console/login", status_code=303, headers=HEADERS)

    app.state.console_errors = error_page
    app.add_middleware(ConsoleCsrf)
