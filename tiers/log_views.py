"""The access log as its readers see it: pages of entries under filters, and the report.

A page is read by a cursor (the last entry's ``seq``), never by an offset: a page stays the
same while the log grows. The filters on the searchable columns (period, actor, action,
outcome) are the database's; those on the role, the domain and the purpose are applied to the
entries themselves, at most :data:`SCAN_LIMIT` entries a page, so that a rare value cannot
make one request read the whole log: the page then comes back short with a cursor to go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from audit import Action, Counts, parse_entry
from audit.entry import OUTCOMES, AuditEntry
from audit.report import Report, render_report, summarise
from errors import InvalidRequest
from tiers import alerts
from tiers._csvio import atomic_output
from tiers.audit_ops import verification_status
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.storage import audit_log

__all__ = [
    "CHUNK",
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "LogFilter",
    "LogPage",
    "ReportResult",
    "build_report",
    "read_page",
    "write_report",
]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
SCAN_LIMIT = 20_000
CHUNK = 1000
_ACTIONS = frozenset(a.value for a in Action)
_VALUE = re.compile(r"[A-Za-z0-9:._@-]{1,128}")


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What a reader of the log asks for; every field is optional."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    role: str | None = None
    action: str | None = None
    domain: str | None = None
    outcome: str | None = None
    purpose: str | None = None
    # any of these actions (the changes: audit.actions.CHANGE_EVENTS)
    actions: frozenset[str] | None = None

    def check(self) -> None:
        """Refuse a filter no entry could match: a bad period, a value with characters no
        such field has (named, never echoed)."""
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidRequest("until must be after since", code="bad_period")
        for name in ("actor", "role", "action", "domain", "purpose"):
            value = getattr(self, name)
            if value is not None and not _VALUE.fullmatch(value):
                raise InvalidRequest(
                    f"the {name} filter holds characters no {name} has", code="bad_filter"
                )
        if self.actions is not None and not self.actions <= _ACTIONS:
            raise InvalidRequest("the actions filter names no action", code="bad_filter")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise InvalidRequest(
                f"the outcome filter is one of {', '.join(OUTCOMES)}", code="bad_filter"
            )

    def keeps(self, entry: AuditEntry) -> bool:
        """The filters the columns do not hold."""
        return (
            (self.role is None or entry.role == self.role)
            and (self.domain is None or self.domain in entry.domains)
            and (self.purpose is None or entry.purpose == self.purpose)
        )

    def detail(self) -> dict[str, str | int]:
        """What the reader asked for, for the entry of the read (values are names, never
        identifiers: they passed :meth:`check`)."""
        fields = ("actor", "role", "action", "domain", "outcome", "purpose")
        return {name: getattr(self, name) for name in fields if getattr(self, name)}


@dataclass(frozen=True, slots=True)
class LogPage:
    entries: list[AuditEntry]
    # The cursor of the next page (the last entry read), or None at the end of the log.
    next_after: int | None


def _scan(deployment: Deployment, filters: LogFilter, after: int | None, limit: int) -> LogPage:
    found: list[AuditEntry] = []
    cursor, scanned = after, 0
    with deployment.reading() as connection:
        while scanned < SCAN_LIMIT:
            chunk = audit_log.query(
                connection,
                since=filters.since,
                until=filters.until,
                actor=filters.actor,
                action=filters.action,
                actions=None if filters.actions is None else sorted(filters.actions),
                outcome=filters.outcome,
                after=cursor,
                limit=CHUNK,
            )
            for data in chunk:
                entry = parse_entry(data)
                cursor, scanned = entry.seq, scanned + 1
                if filters.keeps(entry):
                    found.append(entry)
                    if len(found) == limit:
                        return LogPage(found, cursor)
            if len(chunk) < CHUNK:
                return LogPage(found, None)  # the end of the log
    return LogPage(found, cursor)  # the scan's bound: go on from here


@audited(Action.AUDIT_READ, domain_arg=None)
def read_page(
    deployment: Deployment,
    *,
    access: Access,
    filters: LogFilter,
    after: int | None = None,
    limit: int = DEFAULT_PAGE,
) -> LogPage:
    """One page of the entries that match, oldest first, after the entry ``after``."""
    require(access, Action.AUDIT_READ)
    filters.check()
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit is between 1 and {MAX_PAGE}", code="bad_limit")
    page = _scan(deployment, filters, after, limit)
    with deployment.transaction() as connection:
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_READ,
            counts=Counts(records_out=len(page.entries)),
            detail=filters.detail() | ({"after": after} if after is not None else {}),
        )
    return page


@audited(Action.AUDIT_REPORT, domain_arg=None)
def build_report(
    deployment: Deployment, *, access: Access, since: datetime, until: datetime
) -> Report:
    """The access report of ``[since, until)``: the log's verification, calls and identifiers
    processed by day, actor, action, domain and purpose, refusals, alerts and changes."""
    require(access, Action.AUDIT_REPORT)
    if until <= since:
        raise InvalidRequest("until must be after since", code="bad_period")
    with deployment.transaction() as connection:
        verification, intact = verification_status(deployment, connection)
        entries = [parse_entry(d) for d in audit_log.query(connection, since=since, until=until)]
    found = alerts.scan(entries, alerts.Thresholds.of(deployment.settings))
    report = summarise(
        entries,
        since=since,
        until=until,
        verification=verification,
        intact=intact,
        generated_at=access.now,
        alerts=[
            {
                "hour": a.hour.isoformat(),
                "kind": a.kind,
                "actor": a.actor,
                "observed": a.observed,
                "threshold": a.threshold,
            }
            for a in found
        ],
    )
    with deployment.transaction() as connection:
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_REPORT,
            counts=Counts(records_out=len(entries)),
            detail={"intact": int(intact)},
        )
    return report


@dataclass(frozen=True, slots=True)
class ReportResult:
    entries: int
    intact: bool
    verification: str


def write_report(
    deployment: Deployment, *, access: Access, since: datetime, until: datetime, output: Path
) -> ReportResult:
    """The report as a static HTML file (written whole or not at all)."""
    report = build_report(deployment, access=access, since=since, until=until)
    with atomic_output(output) as handle:
        handle.write(render_report(report))
    return ReportResult(report.total.calls, report.intact, report.verification)
