"""The door: who is calling, decided before the application reads a byte of the request body.

Every request to ``/v1/…`` passes here first, as ASGI middleware:

1. A key whose verification is cached is checked against its client's row (revoked, replaced?)
   with the keys of the requests that wait beside it, in one read (:mod:`api._grouping`).
2. Any other caller (no key, a malformed, unknown, wrong or revoked one, or a good key not
   verified yet) costs an Argon2 verification. Those are limited **per address**
   (``address_verifications_per_second``, ``address_verifications_burst``) before any is
   made, and made in a thread pool of their own (``verification_threads``) with at most
   ``verification_queue`` waiting. A flood of bad keys therefore waits in its own queue and is
   then refused (429 ``rate_limited``); it never takes the threads that serve the clients
   whose keys are verified.
3. A refused caller is answered at once (401, or 429 with ``Retry-After``) and its body is
   never read, whatever its size; the refusal is traced (:mod:`tiers.refusals`).

The client found is left in the request's state for the routes (:func:`api.deps.current_client`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.lowlevel import RunVar
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match

from api._grouping import Grouped
from api.actions import action_of
from api.calls import short_call_in_pool
from api.errors import caller_address, error_body, retry_after, status_of
from audit import Action
from errors import Forbidden, RateLimited, RevokedKey, TiersError, Unauthorised
from tiers.auditing import Access
from tiers.clients import Authenticator, ClientRecord, key_prefix
from tiers.deployment import Deployment
from tiers.ratelimit import RateLimiter
from tiers.refusals import Refusal
from tiers.settings import Settings

__all__ = ["Gate", "answer", "api_routes", "matched_route", "refusal_of", "route_action"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# One pool of verification threads per event loop.
_VERIFYING: RunVar[anyio.CapacityLimiter] = RunVar("tiers_verification_threads")


def bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            text = str(value.decode("latin-1"))
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


# Refusals of the caller (the others are failures: the database down, say).
_DENIALS = (Unauthorised, RateLimited, Forbidden)


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if it is a plain token (it goes into the log), else ours."""
    for name, value in scope.get("headers") or []:
        if name == b"x-request-id":
            given = str(value.decode("latin-1"))
            if len(given) <= 64 and given.replace("-", "").isalnum():
                return given
    return uuid.uuid4().hex


async def answer(scope: Scope, receive: Receive, send: Send, error: TiersError) -> None:
    """The JSON error of ``error``, with the headers its status calls for."""
    headers: dict[str, str] = {}
    if isinstance(error, Unauthorised):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, RateLimited):
        headers["Retry-After"] = retry_after(error.retry_after)
    response = JSONResponse(
        error_body(error.code, error.message), status_code=status_of(error), headers=headers
    )
    await response(scope, receive, send)


async def _cached_checks(
    checks: list[tuple[Authenticator, Deployment, str | None]],
) -> list[ClientRecord | None]:
    """:meth:`Authenticator.cached` of a group's keys, in one read: on the event loop when the
    database is embedded (a read, which on SQLite never waits for a writer), else as a short
    call in the pool."""
    authenticator, deployment, _ = checks[0]
    if any(other is not authenticator for other, _, _ in checks):  # a service has one
        return [(await _cached_checks([check]))[0] for check in checks]
    check = functools.partial(authenticator.cached_many, [token for _, _, token in checks])
    return check() if deployment.embedded else await short_call_in_pool(check)


_CACHED_CHECK: Grouped[tuple[Authenticator, Deployment, str | None], ClientRecord | None] = Grouped(
    "cached_check", _cached_checks
)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, through the routers the app includes."""
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI keeps routers apart
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def matched_route(scope: Scope) -> APIRoute | None:
    """The API route a request is for, found before the router has run (a refusal at the
    door); the app's routes are listed once."""
    state = scope["app"].state
    routes: list[APIRoute] | None = getattr(state, "api_routes", None)
    if routes is None:
        routes = state.api_routes = list(api_routes(scope["app"].router.routes))
    return next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)


def route_action(scope: Scope) -> Action:
    """The action of the route a request is for (what a refusal made before it is logged as:
    see :mod:`api.actions`)."""
    route = matched_route(scope)
    return Action.REQUEST if route is None else action_of(route)


def refusal_of(scope: Scope, token: str | None, error: TiersError, action: Action) -> Refusal:
    """A caller refused before any route (here, or at the console's sign-in): a revoked key
    that verifies is named as its client; any other caller is anonymous."""
    revoked = isinstance(error, RevokedKey)
    access = Access(
        actor=error.client if isinstance(error, RevokedKey) else "anonymous",
        role="none",
        purpose="",
        now=datetime.now(UTC),
        request_id=scope["state"]["request_id"],
    )
    return Refusal(
        access=access,
        action=action,
        code="revoked_key" if revoked else error.code,
        address=caller_address(scope),
        key_prefix=key_prefix(token),
        outcome="denied" if isinstance(error, Unauthorised | RateLimited | Forbidden) else "error",
    )


class Gate:
    """ASGI middleware in front of the application (see the module)."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.addresses = RateLimiter(
            rate=settings.address_verifications_per_second,
            burst=settings.address_verifications_burst,
        )
        self.threads = settings.verification_threads
        self.queue = settings.verification_queue
        # Verifications under way, by a hash of the key: the requests that arrive with a key
        # being verified wait for that verification instead of making their own.
        self._verifying: dict[bytes, asyncio.Future[ClientRecord]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = _request_id(scope)
        if not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        service = scope["app"].state.service
        try:
            deployment = service.opened() or await run_in_threadpool(service.deployment)
            authenticator: Authenticator = service.authenticator()
        except TiersError as error:  # the database is down: 503, and nothing to log it in
            await answer(scope, receive, send, error)
            return
        token = bearer(scope)
        try:
            client = await _CACHED_CHECK((authenticator, deployment, token))
            if client is None:
                client = await self._verified_once(scope, authenticator, token)
        except TiersError as error:  # refused (or a client row that fails its seal)
            await service.trace(deployment, self._refusal(scope, token, error))
            await answer(scope, receive, send, error)
            return
        state["client"] = client
        state["access"] = Access(
            actor=client.name,
            role=client.role,
            purpose="",
            now=datetime.now(UTC),
            request_id=state["request_id"],
            domain=client.domain,
            client_id=client.id,
        )
        await self.app(scope, receive, send)

    async def _verified_once(
        self, scope: Scope, authenticator: Authenticator, token: str | None
    ) -> ClientRecord:
        """One verification of ``token`` at a time: a client's first requests, arriving
        together, cost one verification and one token of its address between them."""
        key = hashlib.sha256((token or "").encode()).digest()
        under_way = self._verifying.get(key)
        if under_way is not None:
            return await asyncio.shield(under_way)
        future: asyncio.Future[ClientRecord] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._verifying[key] = future
        try:
            self.addresses.check(caller_address(scope))
            client = await self._verify(authenticator, token)
        except BaseException as error:
            future.set_exception(error)
            raise
        else:
            future.set_result(client)
            return client
        finally:
            del self._verifying[key]

    async def _verify(self, authenticator: Authenticator, token: str | None) -> ClientRecord:
        """Argon2, in the verification pool; refused at once when too many already wait."""
        try:
            limiter = _VERIFYING.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(self.threads)
            _VERIFYING.set(limiter)
        if limiter.statistics().tasks_waiting >= self.queue:
            raise RateLimited("too many key verifications waiting; retry", retry_after=1.0)
        return await anyio.to_thread.run_sync(authenticator.authenticate, token, limiter=limiter)

    def _refusal(self, scope: Scope, token: str | None, error: TiersError) -> Refusal:
        return refusal_of(scope, token, error, route_action(scope))
