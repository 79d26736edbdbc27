"""Rows of power, sealed: clients, keyrings and domains carry a MAC under a key derived from the
master key (:class:`keys.rows.RowSealer`), written with every change the service makes and
checked before the service obeys the row.

- A client's seal binds its id, name, role, domain, key prefix, key hash, credential version
  and state: a database writer cannot give a partner's client the operator's role, move it to
  another domain, bring a revoked client back, or swap in a key they know.
- A keyring's seal binds the owner, the purpose and, for every version, its number, state and
  whether its material is still there: a writer cannot swap the active and previous versions,
  revive a destroyed one, or add or remove a version.
- A domain's seal binds its id, name, role, card check, blind-only flag and the deployment's
  pseudonym scheme (the ``meta`` row :mod:`tiers.schemes` reads): a writer cannot let a
  blind-only domain take clear identifiers, change how its cards are checked, give it another
  role, or switch the scheme its pseudonyms are computed under.

A row that fails its seal is not obeyed: authentication refuses the client, a keyring or a
domain does not load (``row_tampered``), the event is logged at CRITICAL, and ``tiers check``
lists every such row. ``tiers init`` seals the rows of a database made before seals existed
(trust on first use, logged), and a master-key rotation re-seals everything under the new key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from errors import RowTampered
from keys import KeyEncryptionKey
from keys.rows import RowSealer
from tiers.schemes import META_SCHEME
from tiers.storage import clients as clients_repo
from tiers.storage import domains, keystore
from tiers.storage import meta as meta_repo
from tiers.storage.clients import ClientRecord
from tiers.storage.domains import DomainRecord

__all__ = [
    "Finding",
    "check_client",
    "check_domain",
    "check_keyring",
    "client_holds",
    "find_tampered",
    "reseal_all",
    "seal_client",
    "seal_domain",
    "seal_keyring",
    "seal_unsealed",
]

_log = logging.getLogger("tiers.audit")
CLIENT = "client"
KEYRING = "keyring"
DOMAIN = "domain"


def client_fields(record: ClientRecord) -> list[str | int | bool | None]:
    return [
        record.id,
        record.name,
        record.role,
        record.domain,
        record.key_prefix,
        record.key_hash,
        record.credential_version,
        record.active,
    ]


def seal_client(connection: Connection, sealer: RowSealer, *, client_id: int) -> None:
    """Seal the client's row as it now stands (after the service changed it)."""
    record = clients_repo.by_id(connection, client_id=client_id)
    assert record is not None
    clients_repo.set_seal(
        connection, client_id=client_id, seal=sealer.seal(CLIENT, client_fields(record))
    )


def client_holds(sealer: RowSealer, record: ClientRecord) -> bool:
    return sealer.holds(CLIENT, client_fields(record), record.seal)


def check_client(sealer: RowSealer, record: ClientRecord) -> ClientRecord:
    """``record``, or :class:`RowTampered` (logged) if its seal fails."""
    if not client_holds(sealer, record):
        _log.critical("client row %d fails its seal: it is not obeyed", record.id)
        raise RowTampered("this client's row was changed outside the service; it is not obeyed")
    return record


def _keyring_fields(
    connection: Connection, *, owner: str, purpose: str
) -> list[str | int | bool | None]:
    fields: list[str | int | bool | None] = [owner, purpose]
    for record in keystore.load(connection, owner=owner, purpose=purpose):
        fields += [record.version, record.state, record.wrapped is not None]
    return fields


def seal_keyring(connection: Connection, sealer: RowSealer, *, owner: str, purpose: str) -> None:
    """Seal the keyring's versions as they now stand (after the service changed them)."""
    seal = sealer.seal(KEYRING, _keyring_fields(connection, owner=owner, purpose=purpose))
    keystore.put_seal(connection, owner=owner, purpose=purpose, seal=seal)


def check_keyring(connection: Connection, sealer: RowSealer, *, owner: str, purpose: str) -> None:
    """Raise :class:`RowTampered` (logged) unless the keyring's rows hold their seal."""
    fields = _keyring_fields(connection, owner=owner, purpose=purpose)
    if not sealer.holds(
        KEYRING, fields, keystore.seal_of(connection, owner=owner, purpose=purpose)
    ):
        _log.critical("the %s keyring of %s fails its seal: it is not used", purpose, owner)
        raise RowTampered(
            f"the {purpose} keys of {owner} were changed outside the service; they are not used"
        )


def _scheme(connection: Connection) -> str | None:
    """The scheme's row as stored (None if deleted), which every domain's seal binds."""
    return meta_repo.get(connection, name=META_SCHEME)


def _domain_fields(record: DomainRecord, scheme: str | None) -> list[str | int | bool | None]:
    return [record.id, record.name, record.role, record.card_luhn, record.blind_only, scheme]


def seal_domain(connection: Connection, sealer: RowSealer, record: DomainRecord) -> DomainRecord:
    """Seal the domain's row as it now stands, under the deployment's scheme as it stands;
    returns the record with its seal."""
    seal = sealer.seal(DOMAIN, _domain_fields(record, _scheme(connection)))
    domains.set_seal(connection, domain_id=record.id, seal=seal)
    return replace(record, seal=seal)


def _domain_holds(sealer: RowSealer, record: DomainRecord, scheme: str | None) -> bool:
    """Whether the domain's seal holds under ``scheme``; a failure is logged at CRITICAL."""
    if sealer.holds(DOMAIN, _domain_fields(record, scheme), record.seal):
        return True
    _log.critical("domain %s fails its seal: it is not used", record.name)
    return False


def check_domain(connection: Connection, sealer: RowSealer, record: DomainRecord) -> DomainRecord:
    """``record``, or :class:`RowTampered` (logged) if its seal fails: the row, or the
    deployment's scheme, was changed outside the service."""
    if not _domain_holds(sealer, record, _scheme(connection)):
        raise RowTampered(
            f"domain {record.name} (or the deployment's scheme) was changed outside the service; "
            "it is not used"
        )
    return record


@dataclass(frozen=True, slots=True)
class Finding:
    """A row of power that fails its seal, or that contradicts the access log."""

    kind: str
    name: str
    why: str = "fails its seal (changed outside the service)"

    def line(self) -> str:
        return f"{self.kind} {self.name}: {self.why}"


def find_tampered(connection: Connection, master: KeyEncryptionKey) -> list[Finding]:
    """Every client, keyring and domain whose seal fails."""
    sealer = RowSealer(master)
    found = [
        Finding(CLIENT, record.name)
        for record in clients_repo.list_all(connection)
        if not client_holds(sealer, record)
    ]
    for owner, purpose in keystore.keyrings(connection):
        try:
            check_keyring(connection, sealer, owner=owner, purpose=purpose)
        except RowTampered:
            found.append(Finding(KEYRING, f"{owner}/{purpose}"))
    scheme = _scheme(connection)
    why = "fails its seal (it, or the scheme, changed outside the service)"
    found += [
        Finding(DOMAIN, record.name, why)
        for record in domains.list_all(connection)
        if not _domain_holds(sealer, record, scheme)
    ]
    return found


def seal_unsealed(connection: Connection, sealer: RowSealer) -> int:
    """Seal the rows that have no seal yet (a database made before seals); returns how many.
    A row with a seal that fails is left as it is, for ``tiers check`` to report."""
    return _seal_rows(connection, sealer, every=False)


def reseal_all(connection: Connection, sealer: RowSealer) -> None:
    """Seal every row again (under a new master key's sealer)."""
    _seal_rows(connection, sealer, every=True)


def _seal_rows(connection: Connection, sealer: RowSealer, *, every: bool) -> int:
    count = 0
    for record in clients_repo.list_all(connection):
        if every or record.seal is None:
            seal_client(connection, sealer, client_id=record.id)
            count += 1
    for owner, purpose in keystore.keyrings(connection):
        if every or keystore.seal_of(connection, owner=owner, purpose=purpose) is None:
            seal_keyring(connection, sealer, owner=owner, purpose=purpose)
            count += 1
    for domain in domains.list_all(connection):
        if every or domain.seal is None:
            seal_domain(connection, sealer, domain)
            count += 1
    return count
