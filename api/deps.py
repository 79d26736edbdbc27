"""Dependencies of the routes: the deployment, the authenticated client, the access record."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from errors import Unauthorised
from tiers.auditing import Access, purpose_or_unspecified, stated_purpose
from tiers.clients import ClientRecord
from tiers.deployment import Deployment
from tiers.ratelimit import RateLimiter

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


async def current_client(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> ClientRecord:
    """The client the door let in (:mod:`api.gate`, which verified ``authorization``); its
    rate is checked before anything else is done."""
    client: ClientRecord | None = getattr(request.state, "client", None)
    if client is None:  # a route outside /v1 never asks for a client
        raise Unauthorised("missing or invalid API key")
    limiter: RateLimiter = request.app.state.limiter
    if limiter.buckets.blocking:  # shared in the database: I/O, in the thread pool
        if not limiter.spend_held(client.id):
            await run_in_threadpool(limiter.check, client.id)
    else:
        limiter.check(client.id)
    return client


CurrentClient = Annotated[ClientRecord, Depends(current_client)]
PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", description="why: recorded in the access log")
]


def access_with(request: Request, purpose: str | None, *, required: bool) -> Access:
    """The request's access record with its purpose (body field or ``X-Purpose`` header,
    checked by :func:`~tiers.auditing.stated_purpose`). A refusal is logged with the purpose
    ``unspecified``."""
    access: Access = request.state.access
    full = replace(access, purpose=purpose_or_unspecified(purpose))
    request.state.access = full
    stated_purpose(purpose, required=required, how="the X-Purpose header or the `purpose` field")
    return full


async def current_access(
    request: Request, _client: CurrentClient, purpose: PurposeHeader = None
) -> Access:
    """For routes that take no body and touch no data (administration, the log's integrity):
    the purpose comes from the header and is optional."""
    return access_with(request, purpose, required=False)


RequiredPurposeHeader = Annotated[
    str | None,
    Header(
        alias="X-Purpose",
        description="why: recorded in the access log; required (400 purpose_required without)",
    ),
]


async def data_access(
    request: Request, _client: CurrentClient, purpose: RequiredPurposeHeader = None
) -> Access:
    """For routes that take no body and read or write data, links, deliveries, outputs or the
    log's entries: the purpose comes from the header and is required."""
    return access_with(request, purpose, required=True)


CurrentAccess = Annotated[Access, Depends(current_access)]
DataAccess = Annotated[Access, Depends(data_access)]
