"""What every page of the console shares: templates, the session, headers, errors.

Pages are rendered on the server (Jinja2, autoescaped) and need no script at all: the
Content-Security-Policy allows none (``script-src 'none'``), styles and images from the
service only (the report's charts are ``data:`` images). Forms carry a CSRF token checked by
asgi-csrf (:mod:`api.console`), and the session cookie is HttpOnly, SameSite=Strict, and
Secure whenever the request came over TLS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import get_deployment
from api.errors import status_of
from errors import TiersError
from tiers.auditing import Access
from tiers.console_sessions import ConsoleSession, session_of
from tiers.deployment import Deployment

__all__ = [
    "COOKIE",
    "HEADERS",
    "Session",
    "SignInNeeded",
    "error_page",
    "page",
    "secure",
    "session_access",
]

COOKIE = "tiers_console"
TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SignInNeeded(Exception):
    """No live session: the page answers with the sign-in form."""


def secure(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through a proxy that said so)."""
    return request.url.scheme == "https"


def page(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A page of the console, with its security headers."""
    session: ConsoleSession | None = getattr(request.state, "console", None)
    token = request.scope.get("csrftoken")
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrftoken": token() if callable(token) else "",
            "now": datetime.now(UTC),
            **context,
        },
        status_code=status,
        headers=HEADERS,
    )
    return response


def error_page(request: Request, error: TiersError) -> Response:
    """A refusal or failure in a console page, named by its code, never echoing the input."""
    if isinstance(getattr(request.state, "console", None), ConsoleSession):
        return page(request, "error.html", {"error": error}, status=status_of(error))
    return RedirectResponse("/console/login", status_code=303, headers=HEADERS)


async def signed_in(request: Request) -> ConsoleSession:
    """The live session of the request's cookie, else :class:`SignInNeeded`."""
    deployment: Deployment = await get_deployment(request)
    now = datetime.now(UTC)
    session = await run_in_threadpool(session_of, deployment, request.cookies.get(COOKIE), now=now)
    if session is None:
        raise SignInNeeded
    request.state.console = session
    request.state.access = session.access(now, request.state.request_id)
    return session


Session = Annotated[ConsoleSession, Depends(signed_in)]


def session_access(request: Request) -> Access:
    """The access record of this page (set by :func:`signed_in`)."""
    access: Access = request.state.access
    return access
