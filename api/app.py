"""The FastAPI application factory: one deployment per process, routes, limits, error mapping."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.console import install_console
from api.errors import OneLine, caller_address, error_body, install_error_handlers
from api.gate import Gate, answer, route_action
from api.routes import admin, audit, blind, data, exchanges, health, links
from api.upload import HeldBytes
from api.vitals import Metrics, VitalSigns, metrics_allowed
from errors import BodyTooLarge, TiersError
from tiers import __version__
from tiers.clients import Authenticator
from tiers.deployment import Deployment
from tiers.inbox import recover_inbox
from tiers.job_runs import stop_runners
from tiers.jobs import recover_jobs
from tiers.ratelimit import RateLimiter
from tiers.refusals import Refusal, RefusalTally
from tiers.settings import Settings
from tiers.signing_lease import SigningLease

__all__ = ["create_app"]

_log = logging.getLogger("tiers.audit")

_PART = re.compile(r"/v1/files/[^/]+/parts/[^/]+")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyLimit:
    """Refuse bodies over the limit before any work, behind the door (:mod:`api.gate`): by
    Content-Length at once; a JSON body sent in chunks is read whole (within the limit) before
    the route sees it, and an upload is counted as it streams in. A part of an upload in parts
    is read whole, within its own limit. A refusal is traced under the client's name
    (:mod:`tiers.refusals`)."""

    def __init__(
        self, app: ASGIApp, *, json_limit: int, upload_limit: int, part_limit: int
    ) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.part_limit = part_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "client" not in scope.get("state", {}):
            # Outside /v1 (health, documentation) no route reads a body; inside it, a caller
            # the door refused never gets here.
            await self.app(scope, receive, send)
            return
        uploads = ("/v1/files", "/v1/exchanges")
        limit = self.upload_limit if scope["path"] in uploads else self.json_limit
        if _PART.fullmatch(scope["path"]):
            limit = self.part_limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(scope, receive, send, limit)
            return
        if scope["path"] not in uploads:
            body = await _whole_body(receive, limit)
            if body is None:
                await _too_large(scope, receive, send, limit)
                return
            await self.app(scope, _replay(body, receive), send)
            return
        seen = 0

        async def counted() -> Message:
            # An upload streams into its work: past the limit, the work fails (and records
            # it) and the route answers 413, like any refusal of the core.
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(f"the body exceeds {limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _whole_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None once it passes ``limit`` (the rest is not read)."""
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` whole, then waits on the connection as before."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """413, traced under the client (counted like every refusal made before a route)."""
    service = scope["app"].state.service
    deployment = service.opened()
    if deployment is not None:
        refusal = Refusal(
            access=scope["state"]["access"],
            action=route_action(scope),
            code="too_large",
            address=caller_address(scope),
        )
        await service.trace(deployment, refusal)
    await answer(scope, receive, send, BodyTooLarge(f"the body exceeds {limit} bytes"))


class Service:
    """The deployment of this process, opened on first use so that the service starts (and
    says it is not ready) while the database is down, and recovers without a restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._deployment: Deployment | None = None
        self._authenticator: Authenticator | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.tally = RefusalTally()
        self.held = HeldBytes(settings.upload_hold_bytes)
        self.metrics = Metrics(self)
        # The clients' request rate: shared in the database once a PostgreSQL deployment opens.
        self.limiter: RateLimiter | None = None
        # Whether this node signs checkpoints (tiers.signing_lease), once the deployment opens.
        self.lease: SigningLease | None = None

    def deployment(self) -> Deployment:
        """Raises :class:`~errors.TiersError` (mapped to 503) while it cannot be opened."""
        if self._deployment is None:
            with self._lock:
                if self._deployment is None:
                    deployment = Deployment.open(self.settings)
                    deployment.checkpoint_due = self._wake.set
                    deployment.observer = self.metrics.observe
                    self.lease = SigningLease.of(deployment.engine)
                    if self.limiter is not None and deployment.limits.blocking:
                        self.limiter.buckets = deployment.limits  # one rate for every node
                    recover_jobs(deployment, now=datetime.now(UTC))
                    recover_inbox(deployment)
                    self._authenticator = Authenticator(deployment)
                    self._deployment = deployment
        return self._deployment

    def opened(self) -> Deployment | None:
        """The deployment if it is open already (no I/O), else None."""
        return self._deployment

    def authenticator(self) -> Authenticator:
        self.deployment()
        assert self._authenticator is not None
        return self._authenticator

    async def trace(self, deployment: Deployment, refusal: Refusal) -> None:
        """Count a refusal made at the door; the first of its minute is written now, in the
        thread pool (see :mod:`tiers.refusals`)."""
        if self.tally.count(refusal):
            await run_in_threadpool(self.tally.write, deployment, refusal)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._deployment is not None:
            self.tally.flush(self._deployment)
            if self.signs():
                self._deployment.sign_pending()
            if self.lease is not None:
                self.lease.release()
            self._deployment.close()

    def signs(self) -> bool:
        """Whether this process holds the signing lease (tiers.signing_lease) now."""
        return self.lease is not None and self.lease.held()

    def start_checkpoints(self) -> None:
        """Two threads of their own (they wait on disks and on the network): one signs what no
        checkpoint covers every ``audit_checkpoint_seconds``, and as soon as a request brings
        the unsigned entries to ``audit_checkpoint_every``; the other sends the newest
        checkpoint to the witnesses, so that a witness that is down or slow never delays a
        signature. Both act only while this process holds the signing lease: one node of a
        deployment at a time (:mod:`tiers.signing_lease`)."""
        self._threads = [
            threading.Thread(target=self._checkpoints, name="checkpoints", daemon=True),
            threading.Thread(target=self._witnesses, name="witnesses", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _checkpoints(self) -> None:
        while True:
            # Every audit_checkpoint_seconds, or at once when the unsigned entries reach the count.
            self._wake.wait(self.settings.audit_checkpoint_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            deployment = self._deployment
            try:
                if deployment is not None:
                    self.tally.flush(deployment, datetime.now(UTC))
                if deployment is not None and deployment.due_for_checkpoint() and self.signs():
                    deployment.sign_pending()
            except Exception as error:  # noqa: BLE001 - the thread must outlive a bad second
                _log.error("checkpoint thread: %s", type(error).__name__)

    def _witnesses(self) -> None:
        while not self._stop.wait(self.settings.audit_checkpoint_seconds):
            deployment = self._deployment
            try:
                if deployment is not None and self.signs():
                    deployment.witness_newest()
            except Exception as error:  # noqa: BLE001 - the thread must outlive a bad witness
                _log.error("witness thread: %s", type(error).__name__)


def _one_line_errors() -> None:
    """The server's error log gets one line an exception, never a traceback (api.errors)."""
    server = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, OneLine) for f in server.filters):
        server.addFilter(OneLine())


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service over the deployment ``settings`` names (default: the environment).

    At start-up it opens the deployment (refusing a wrong master key), and marks failed the file
    jobs that a crashed worker left running.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(settings)
        app.state.service = service
        app.state.metrics = service.metrics
        app.state.log_requests = settings.log_requests
        app.state.limiter = service.limiter = RateLimiter(
            rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )
        with contextlib.suppress(TiersError):
            service.deployment()  # open now if possible; /readyz says why not otherwise
        service.start_checkpoints()
        try:
            yield
        finally:
            stop_runners()  # the jobs they run fail (interrupted), as at a restart
            service.close()

    # Swagger UI and ReDoc from the assets of a registry package (fastapi-offline), not a CDN:
    # /docs and /redoc work on a host with no way out.
    app = FastAPIOffline(
        title="tiers",
        version=__version__,
        description="Trusted-third-party pseudonymisation for loyalty coalitions. Every call "
        "but the health checks is recorded in a tamper-evident access log.",
        lifespan=lifespan,
    )
    for router in (
        health.router,
        data.router,
        links.router,
        exchanges.router,
        blind.router,
        audit.router,
        admin.router,
    ):
        app.include_router(router)
    install_error_handlers(app)
    install_console(app, settings)
    _one_line_errors()

    @app.get("/metrics", name="metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus exposition, for callers from ``metrics_allow`` or with ``metrics_token``."""
        if not metrics_allowed(request.scope, settings):
            refusal = error_body("forbidden", "the metrics are for the monitoring's address or key")
            return JSONResponse(refusal, status_code=403)
        body = generate_latest(request.app.state.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
    # The last added runs first: the door, then the body's limit, then the routes.
    app.add_middleware(
        _BodyLimit,
        json_limit=settings.max_json_body_bytes,
        upload_limit=settings.max_upload_bytes,
        part_limit=settings.upload_part_max_bytes,
    )
    app.add_middleware(Gate, settings=settings)
    app.add_middleware(VitalSigns)  # outermost: it times and counts every answer
    return app
