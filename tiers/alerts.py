"""Alerts from the access log: the signs of a dictionary attack, and of a key being guessed.

Card numbers and phone numbers have little entropy: whoever can pseudonymise freely can
enumerate the space and build a reverse table of a domain. The rate limit bounds how fast; the
access log shows who tried. Two signs are raised, per actor and per clock hour (UTC):

- ``volume``: more identifiers handled than ``alert_values_per_hour``, counted in values, not
  requests, over every action that computes pseudonyms from identifiers the caller submits
  (``IDENTIFIER_ACTIONS``: a file's identifier cells, an association's two cards) and the
  linking keys the hub resolves;
- ``refusals``: more refused or failed calls than ``alert_refusals_per_hour`` (a stolen key
  probing other domains, or someone guessing keys, who is logged as ``anonymous``);
- ``association_refusals``: more refused associations than
  ``alert_association_refusals_per_hour`` (a partner probing whether card numbers are
  enrolled, or linked, at another partner: it is told only ``association_refused``);
- ``client_created``, ``client_requested``, ``client_approved``, ``client_rekeyed``,
  ``client_revoked``: each change of who may hold keys, whoever made it (threshold 0).

And the alarms of the log's own integrity, raised now (their hour is the current one):

- ``log_inconsistent`` or ``checkpoint_store_…``: the service cannot sign the log (see
  :mod:`tiers._checkpointing`); the scan is then not logged, since nothing can be;
- ``row_tampered``: a client, keyring or domain whose seal fails (:mod:`tiers.sealing`).

The scan reads the log, not a counter in one process, so it sees every worker and every host.
Run it from cron or a monitor: ``tiers audit alerts`` exits 3 when it finds something.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from audit import Action, Counts, parse_entry
from audit.actions import identifiers
from audit.entry import AuditEntry
from errors import InvalidRequest
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.sealing import find_tampered
from tiers.settings import Settings
from tiers.storage import audit_log

__all__ = [
    "ALERT_OF_CLIENT_EVENT",
    "Alert",
    "Thresholds",
    "find_alerts",
    "scan",
]

# Changes of who may hold keys: each raises an alert of its own kind, whatever their number.
ALERT_OF_CLIENT_EVENT: dict[str, str] = {
    Action.CLIENT_ADD: "client_created",
    Action.CLIENT_REQUEST: "client_requested",
    Action.CLIENT_APPROVE: "client_approved",
    Action.CLIENT_ROTATE_KEY: "client_rekeyed",
    Action.CLIENT_REVOKE: "client_revoked",
}
MAX_PERIOD = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class Thresholds:
    values_per_hour: int
    refusals_per_hour: int
    association_refusals_per_hour: int

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.alert_values_per_hour,
            settings.alert_refusals_per_hour,
            settings.alert_association_refusals_per_hour,
        )


@dataclass(frozen=True, slots=True)
class Alert:
    # "volume", "refusals", "association_refusals", a client event (ALERT_OF_CLIENT_EVENT),
    # "row_tampered" or a log fault
    kind: str
    actor: str
    hour: datetime  # the start of the clock hour, UTC
    observed: int
    threshold: int


def _utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC, as everywhere in the log."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def scan(entries: Iterable[AuditEntry], thresholds: Thresholds) -> list[Alert]:
    """The alerts these entries raise, by hour, then kind, then actor."""
    values: Counter[tuple[datetime, str]] = Counter()
    refusals: Counter[tuple[datetime, str]] = Counter()
    associations: Counter[tuple[datetime, str]] = Counter()
    events: dict[str, Counter[tuple[datetime, str]]] = {
        k: Counter() for k in ALERT_OF_CLIENT_EVENT.values()
    }
    for entry in entries:
        key = (_hour(entry.time), entry.actor)
        if entry.outcome != "ok":
            refusals[key] += 1
            if entry.action == Action.CARD_ASSOCIATE and entry.outcome == "denied":
                associations[key] += 1
        else:
            values[key] += identifiers(entry)
            if entry.action in ALERT_OF_CLIENT_EVENT:
                events[ALERT_OF_CLIENT_EVENT[entry.action]][key] += 1
    found = [
        Alert(kind, actor, hour, observed, threshold)
        for kind, counter, threshold in (
            ("volume", values, thresholds.values_per_hour),
            ("refusals", refusals, thresholds.refusals_per_hour),
            ("association_refusals", associations, thresholds.association_refusals_per_hour),
            *((kind, counter, 0) for kind, counter in events.items()),
        )
        for (hour, actor), observed in counter.items()
        if observed > threshold
    ]
    return sorted(found, key=lambda a: (a.hour, a.kind, a.actor))


def _integrity(deployment: Deployment, connection: Connection, now: datetime) -> list[Alert]:
    """The alarms of the log's and the rows' integrity, as they stand now."""
    hour = _hour(_utc(now))
    found = []
    if deployment.log_fault is not None:
        found.append(Alert(deployment.log_fault.code, "service", hour, 1, 0))
    for finding in find_tampered(connection, deployment.master):
        found.append(Alert("row_tampered", f"{finding.kind}:{finding.name}", hour, 1, 0))
    return found


@audited(Action.AUDIT_ALERTS, domain_arg=None)
def find_alerts(
    deployment: Deployment,
    *,
    access: Access,
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: Thresholds | None = None,
) -> list[Alert]:
    """Scan the log between ``since`` (default: 24 hours before now) and ``until`` (default:
    now); at most 31 days at a time. Thresholds default to the deployment's settings."""
    require(access, Action.AUDIT_ALERTS)
    until = _utc(until or access.now)
    since = _utc(since or until - timedelta(hours=24))
    if until <= since or until - since > MAX_PERIOD:
        raise InvalidRequest("the period must be positive and at most 31 days", code="bad_period")
    thresholds = thresholds or Thresholds.of(deployment.settings)
    if deployment.log_fault is not None:  # nothing can be logged: the alarm says why
        with deployment.reading() as connection:
            return _integrity(deployment, connection, access.now)
    with deployment.transaction() as connection:
        entries = (
            parse_entry(data)
            for data in audit_log.query(connection, since=_hour(since), until=until)
        )
        found = scan(entries, thresholds) + _integrity(deployment, connection, access.now)
        deployment.record(
            connection,
            access,
            action=Action.AUDIT_ALERTS,
            counts=Counts(records_out=len(found)),
            detail={
                "values_per_hour": thresholds.values_per_hour,
                "refusals_per_hour": thresholds.refusals_per_hour,
                "association_refusals_per_hour": thresholds.association_refusals_per_hour,
            },
        )
    return found
