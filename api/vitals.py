"""The service's vital signs: Prometheus metrics at ``GET /metrics`` and one log line a request.

Every label comes from a closed set the service defines: a route's name (never its path,
which can hold a hub linking key), an HTTP method, a status, an action of the log, an error
code of the registry, a job's state, a domain's name. No label carries an identifier, a
pseudonym, a key or a client's secret, whatever a caller sends.

Counters are per process: with several workers, each scrape reaches one of them (see the
operator's guide); the state read from the database (log, checkpoints, jobs, inboxes) is the
same from every worker.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.gate import matched_route
from api.logs import request_id_var
from audit import Action, AuditEntry
from audit.actions import identifiers
from errors import TiersError
from errors.codes import CODES
from keys.hsm import pin_refusals
from tiers.settings import Settings
from tiers.vitals import read_vitals

__all__ = ["Metrics", "VitalSigns", "metrics_allowed"]

_log = logging.getLogger("tiers.requests")
_ACTIONS = frozenset(a.value for a in Action)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class _State(Collector):
    """Read at each scrape: what the database says now."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tiers_up", "1 when the database answers")
        deployment = self.service.opened()
        try:
            vitals = read_vitals(deployment, now=datetime.now(UTC)) if deployment else None
        except Exception as error:  # noqa: BLE001 - the database's own errors: not ready
            _log.warning("metrics: the state could not be read (%s)", type(error).__name__)
            vitals = None
        up.add_metric([], 0 if vitals is None else 1)
        yield up
        yield from _master_key(deployment)
        if vitals is None:
            return
        lease = self.service.lease
        yield _gauge(
            "tiers_checkpoint_signer",
            "1 while this process holds the signing lease (signs checkpoints for every node)",
            1 if lease is not None and lease.held() else 0,
        )
        yield _gauge(
            "tiers_log_entries", "entries ever appended to the access log", vitals.log_entries
        )
        yield _gauge(
            "tiers_log_unsigned_entries",
            "entries no signed checkpoint covers yet",
            vitals.unsigned_entries,
        )
        if vitals.checkpoint_age_seconds is not None:
            yield _gauge(
                "tiers_checkpoint_age_seconds",
                "time since the newest checkpoint was signed",
                vitals.checkpoint_age_seconds,
            )
        jobs = GaugeMetricFamily("tiers_file_jobs", "file jobs by state", labels=["state"])
        for state, count in sorted(vitals.jobs.items()):
            jobs.add_metric([state], count)
        yield jobs
        deliveries = GaugeMetricFamily(
            "tiers_inbox_backlog_deliveries", "deliveries not yet acknowledged", labels=["domain"]
        )
        rows = GaugeMetricFamily(
            "tiers_inbox_backlog_rows",
            "rows of the deliveries not yet acknowledged",
            labels=["domain"],
        )
        for domain, (count, total) in sorted(vitals.inbox.items()):
            deliveries.add_metric([domain], count)
            rows.add_metric([domain], total)
        yield deliveries
        yield rows
        if vitals.pool_in_use is not None:
            yield _gauge(
                "tiers_db_pool_in_use", "database connections checked out", vitals.pool_in_use
            )
        if vitals.pool_size is not None:
            yield _gauge(
                "tiers_db_pool_size", "database connections the pool keeps", vitals.pool_size
            )


def _master_key(deployment: Any) -> Iterator[Metric]:
    """Whether the master key can be used now (a token that went away: 0), and how many
    times a token refused this process's PIN."""
    if deployment is not None:
        try:
            deployment.master.check_available()
            available = 1
        except TiersError:
            available = 0
        yield _gauge("tiers_master_key_available", "1 when the master key can be used", available)
    yield CounterMetricFamily(
        "tiers_hsm_pin_refusals", "PINs refused by the HSM token", value=pin_refusals()
    )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """This process's metrics, in a registry of their own (one per application)."""

    def __init__(self, service: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tiers_http_requests",
            "requests answered, by route name, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tiers_http_request_duration_seconds",
            "time to answer, by route name",
            ["route"],
            buckets=_LATENCY,
            registry=self.registry,
        )
        self.identifiers = Counter(
            "tiers_identifiers_processed",
            "customers' identifiers (or cards, or linking keys) processed, by action",
            ["action"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "tiers_refusals",
            "answers of 400 and over, by error code",
            ["code"],
            registry=self.registry,
        )
        self.file_rows = Counter(
            "tiers_file_job_rows", "rows of files tokenised (read)", registry=self.registry
        )
        self.registry.register(_State(service))

    def observe(self, entry: AuditEntry) -> None:
        """An entry recorded by this process (:attr:`Deployment.observer`)."""
        if entry.outcome != "ok" or entry.action not in _ACTIONS:
            return
        counted = identifiers(entry)
        if counted:
            self.identifiers.labels(entry.action).inc(counted)
        if entry.action == Action.TOKENISE_FILE:
            self.file_rows.inc(entry.counts.records_in)


def metrics_allowed(scope: Scope, settings: Settings) -> bool:
    """A caller from ``metrics_allow``'s networks, or one presenting ``metrics_token``."""
    token = settings.metrics_token
    if token is not None:
        for name, value in scope.get("headers") or []:
            if name == b"authorization" and hmac.compare_digest(
                value, b"Bearer " + token.get_secret_value().encode()
            ):
                return True
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:  # a test client's name, a Unix socket
        return False
    networks = [n.strip() for n in settings.metrics_allow.split(",") if n.strip()]
    return address is not None and any(
        address in ipaddress.ip_network(network, strict=False) for network in networks
    )


def _route_name(scope: Scope) -> str:
    # refused before routing (at the door): the route it was for
    route = scope.get("route") or matched_route(scope)
    name = getattr(route, "name", None)
    return str(name) if name else "unmatched"


def _error_code(body: bytes) -> str:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return code if isinstance(code, str) and code in CODES else "unknown"


class VitalSigns:
    """ASGI middleware, outermost: times each request, counts it by route name and status,
    counts refusals by their error code, and logs one line (request id, route name, method,
    status, duration; never the path or the query)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, error = 500, bytearray()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif status >= 400 and len(error) < 4096:
                error.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._count(scope, status, bytes(error), time.perf_counter() - started)

    def _count(self, scope: Scope, status: int, error: bytes, elapsed: float) -> None:
        metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
        route = _route_name(scope)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        code = _error_code(error) if status >= 400 else None
        if metrics is not None:
            metrics.requests.labels(route, method, str(status)).inc()
            metrics.latency.labels(route).observe(elapsed)
            if code is not None:
                metrics.refusals.labels(code).inc()
        if status < 400 and not getattr(scope["app"].state, "log_requests", False):
            return
        token = request_id_var.set(scope.get("state", {}).get("request_id"))
        try:
            _log.info(
                "request",
                extra={
                    "route": route,
                    "method": method,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    **({"code": code} if code else {}),
                },
            )
        finally:
            request_id_var.reset(token)
