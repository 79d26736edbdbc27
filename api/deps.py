"""Dependencies of the routes: the deployment, the authenticated client, the access record."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from api.calls import short_call_in_pool
from api.grouping import Grouped
from tiers.auditing import Access, purpose_or_unspecified, stated_purpose
from tiers.clients import Authenticator
from tiers.deployment import Deployment
from tiers.ratelimit import RateLimiter
from tiers.storage.clients import ClientRecord

__all__ = [
    "CurrentAccess",
    "CurrentClient",
    "DataAccess",
    "DeploymentDep",
    "PurposeHeader",
    "access_with",
]


# The dependencies that do no I/O are coroutines: FastAPI runs each plain-function dependency
# in its thread pool, and every such hop costs a request more than the work of these.


async def get_deployment(request: Request) -> Deployment:
    """The open deployment; opening it (once, or after the database was down) is I/O, done in
    the thread pool."""
    service = request.app.state.service
    opened: Deployment | None = service.opened()
    if opened is not None:
        return opened
    deployment: Deployment = await run_in_threadpool(service.deployment)
    return deployment


DeploymentDep = Annotated[Deployment, Depends(get_deployment)]


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    # Only a plain token is kept: the id goes into the log.
    if given and len(given) <= 64 and given.replace("-", "").isalnum():
        return given
    return request.state.request_id  # type: ignore[no-any-return]


async def current_client(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> ClientRecord:
    """The authenticated client; its rate is checked before anything else is done. A key whose
    verification is cached is checked against the client's row (revoked, replaced?) with the
    keys of the requests that wait beside it, in one read (see :mod:`api.grouping`): on the
    event loop when the database is embedded (a read, which on SQLite never waits for a
    writer), else as a short call in the pool. Argon2 runs in the pool."""
    now = datetime.now(UTC)
    request.state.anonymous = Access(
        actor="anonymous", role="none", purpose="", now=now, request_id=_request_id(request)
    )
    token = None
    if authorization and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip()
    deployment = await get_deployment(request)
    authenticator: Authenticator = request.app.state.service.authenticator()
    client = await _CACHED_CHECK((authenticator, deployment, token))
    if client is None:
        client = await run_in_threadpool(authenticator.authenticate, token)
    request.state.access = Access(
        actor=client.name,
        role=client.role,
        purpose="",
        now=now,
        request_id=_request_id(request),
        domain=client.domain,
        client_id=client.id,
    )
    limiter: RateLimiter = request.app.state.limiter
    limiter.check(client.id)
    return client


async def _cached_checks(
    checks: list[tuple[Authenticator, Deployment, str | None]],
) -> list[ClientRecord | None]:
    """:meth:`Authenticator.cached` of a group's keys, in one read."""
    authenticator, deployment, _ = checks[0]
    if any(other is not authenticator for other, _, _ in checks):  # a service has one
        return [(await _cached_checks([check]))[0] for check in checks]
    check = functools.partial(authenticator.cached_many, [token for _, _, token in checks])
    return check() if deployment.embedded else await short_call_in_pool(check)


_CACHED_CHECK: Grouped[tuple[Authenticator, Deployment, str | None], ClientRecord | None] = Grouped(
    "cached_check", _cached_checks
)


CurrentClient = Annotated[ClientRecord, Depends(current_client)]
PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", description="why: recorded in the access log")
]


def access_with(request: Request, purpose: str | None, *, required: bool) -> Access:
    """The request's access record with its purpose (body field or ``X-Purpose`` header,
    checked by :func:`~tiers.auditing.stated_purpose`). A refusal is logged with the purpose
    ``unspecified``."""
    access: Access = request.state.access
    full = Access(
        actor=access.actor,
        role=access.role,
        purpose=purpose_or_unspecified(purpose),
        now=access.now,
        request_id=access.request_id,
        domain=access.domain,
        client_id=access.client_id,
    )
    request.state.access = full
    stated_purpose(purpose, required=required, how="the X-Purpose header or the `purpose` field")
    return full


async def current_access(
    request: Request, _client: CurrentClient, purpose: PurposeHeader = None
) -> Access:
    """For routes that take no body and touch no data (administration, the log's integrity):
    the purpose comes from the header and is optional."""
    return access_with(request, purpose, required=False)


async def data_access(
    request: Request, _client: CurrentClient, purpose: PurposeHeader = None
) -> Access:
    """For routes that take no body and read or write data, links, deliveries, outputs or the
    log's entries: the purpose comes from the header and is required."""
    return access_with(request, purpose, required=True)


CurrentAccess = Annotated[Access, Depends(current_access)]
DataAccess = Annotated[Access, Depends(data_access)]
