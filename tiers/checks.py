"""``tiers check``: what the database holds that the service would not obey, listed for the
operator.

- Rows of power whose seal fails (:mod:`tiers.sealing`): changed outside the service.
- Rows of power that contradict the access log: a seal binds what a row says, not when, so a
  database writer who kept an older row with its seal (a client before its revocation or key
  rotation, a key version before its destruction) could put both back; and a seal cannot
  show that a row was deleted (a domain the log shows made). The log, which its
  checkpoints, witnesses and auditors protect, says what the service last did to each: the
  row must agree. (Entries purged from the log can no longer be compared.)
- What the schema no longer checks (:mod:`tiers.storage.integrity`): index entries and cards
  naming what does not exist, a card twice, a card without its hub key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection

from audit import Action, Counts, parse_entry
from audit.entry import AuditEntry
from tiers._keyrings import PSEUDONYM_PURPOSE
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.sealing import Finding, find_tampered
from tiers.storage import audit_log, domains, integrity, keystore
from tiers.storage import clients as clients_repo

__all__ = [
    "Finding",
    "check_deployment",
]


@audited(Action.CHECK, domain_arg=None)
def check_deployment(deployment: Deployment, *, access: Access) -> list[Finding]:
    """Every row of power that fails its seal or contradicts the log; the check is logged
    with how many it found (when the log can be written: a tampered signing keyring is among
    what it reports)."""
    require(access, Action.AUDIT_VERIFY)
    if deployment.log_fault is not None:  # nothing can be logged: the findings still matter
        with deployment.reading() as connection:
            return _findings(deployment, connection)
    with deployment.transaction() as connection:
        found = _findings(deployment, connection)
        deployment.record(
            connection,
            access,
            action=Action.CHECK,
            counts=Counts(records_out=len(found)),
            detail={"findings": len(found)},
        )
    return found


def _findings(deployment: Deployment, connection: Connection) -> list[Finding]:
    """One finding a row of power (its failed seal first, else its disagreement with the log),
    then one a kind of integrity fault."""
    tampered = find_tampered(connection, deployment.master)
    named = {(f.kind, f.name) for f in tampered}
    rolled_back = [f for f in find_rollbacks(connection) if (f.kind, f.name) not in named]
    broken = [
        Finding("integrity", fault, f"{count} {'row' if count == 1 else 'rows'}")
        for fault, count in integrity.faults(connection).items()
        if count
    ]
    return tampered + rolled_back + broken


def _logged(connection: Connection, *actions: Action) -> Iterator[AuditEntry]:
    for action in actions:
        for data in audit_log.query(connection, action=action):
            entry = parse_entry(data)
            if entry.outcome == "ok":
                yield entry


@dataclass
class _ClientHistory:
    """What the log says the service did to one client."""

    added: AuditEntry | None = None
    revoked: bool = False
    rotations: int = 0


def find_rollbacks(connection: Connection) -> list[Finding]:
    """Clients and keyrings whose rows say less than the log (a rollback), and domains the
    log shows made that the database no longer holds."""
    return _client_rollbacks(connection) + _key_rollbacks(connection) + _lost_domains(connection)


def _lost_domains(connection: Connection) -> list[Finding]:
    """A domain row deleted by hand: the service never removes one (its customers' pseudonyms
    are then refused as of an unknown domain)."""
    held = {record.name for record in domains.list_all(connection)}
    added = sorted({e.domains[0] for e in _logged(connection, Action.DOMAIN_ADD) if e.domains})
    return [
        Finding("domain", name, "the access log shows it made, but the database has no row")
        for name in added
        if name not in held
    ]


def _client_rollbacks(connection: Connection) -> list[Finding]:
    history: dict[str, _ClientHistory] = {}
    for entry in _logged(
        connection, Action.CLIENT_ADD, Action.CLIENT_REVOKE, Action.CLIENT_ROTATE_KEY
    ):
        known = history.setdefault(str(entry.detail.get("client")), _ClientHistory())
        if entry.action == Action.CLIENT_ADD:
            known.added = entry
        elif entry.action == Action.CLIENT_REVOKE:
            known.revoked = True
        else:
            known.rotations += 1
    found = []
    for record in clients_repo.list_all(connection):
        logged = history.get(record.name)
        if logged is None:
            continue
        why = None
        if logged.revoked and record.active:
            why = "active, but the access log shows its revocation"
        elif logged.added is not None:
            expected = 1 + logged.rotations + int(logged.revoked)
            domain = logged.added.domains[0] if logged.added.domains else None
            if record.credential_version != expected:
                why = f"at credential {record.credential_version}, the log's is {expected}"
            elif (record.role, record.domain) != (logged.added.detail.get("role"), domain):
                why = "its role or domain is not the one the log shows it was given"
        if why:
            found.append(Finding("client", record.name, why))
    return found


def _key_rollbacks(connection: Connection) -> list[Finding]:
    destroyed: dict[str, set[int]] = {}
    newest: dict[str, int] = {}
    for entry in _logged(connection, Action.KEY_ROTATE, Action.KEY_DESTROY):
        if not entry.domains:
            continue
        owner = entry.domains[0]
        if entry.action == Action.KEY_DESTROY:
            destroyed.setdefault(owner, set()).add(int(entry.detail.get("version", 0)))
        else:
            newest[owner] = max(newest.get(owner, 0), int(entry.detail.get("new_version", 0)))
    found = []
    for owner in sorted(set(destroyed) | set(newest)):
        states = {
            record.version: (record.state, record.wrapped is not None)
            for record in keystore.load(connection, owner=owner, purpose=PSEUDONYM_PURPOSE)
        }
        revived = [v for v in sorted(destroyed.get(owner, ())) if states.get(v, ("", False))[1]]
        latest = newest.get(owner)
        if revived:
            why = f"version {revived[0]} has key material, but the log shows it destroyed"
        elif latest is not None and max(states, default=0) < latest:
            why = f"its newest version is {max(states, default=0)}, the log's is {latest}"
        else:
            continue
        found.append(Finding("keyring", f"{owner}/{PSEUDONYM_PURPOSE}", why))
    return found
