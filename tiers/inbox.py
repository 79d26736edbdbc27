"""Inboxes: deliveries to a partner or to the hub, kept until acknowledged, then purged.

A delivery's file is written under a temporary name and renamed into place, then published
(:mod:`tiers.filestore`: on PostgreSQL, into the database) in the transaction that commits its
row, so a recipient only ever lists complete deliveries, from any node.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Connection

from audit import Action, Counts
from errors import InvalidRequest, NotFound
from tiers._csvio import atomic_output
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.storage import inbox as inbox_repo
from tiers.storage.domains import DomainRecord
from tiers.storage.inbox import DeliveryRecord

__all__ = [
    "DeliveryRecord",
    "PendingDelivery",
    "ack_delivery",
    "delivery_file",
    "list_inbox",
    "purge_inbox",
    "recover_inbox",
    "staged_delivery",
]

_ID = re.compile(r"[0-9a-f]{32}")
RETENTION_DAYS = 30


def _name(delivery_id: str) -> str:
    return f"inbox/{delivery_id}.csv"


def _file(deployment: Deployment, delivery_id: str) -> Path:
    """Where the delivery is written (and stays, on SQLite: :mod:`tiers.filestore`)."""
    return deployment.files.staging(_name(delivery_id))


def _directory(deployment: Deployment) -> Path:
    directory = deployment.settings.home / "inbox"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


class PendingDelivery:
    """A delivery being written: rows go to a temporary file; :meth:`commit` files it."""

    def __init__(self, delivery_id: str, writer: csv._writer, handle: IO[str]) -> None:  # type: ignore[name-defined]
        self.id = delivery_id
        self.writer = writer
        self.handle = handle
        self.rows = 0

    def write(self, row: Sequence[str]) -> None:
        self.writer.writerow(row)
        self.rows += 1


@contextmanager
def staged_delivery(
    deployment: Deployment,
    connection: Connection,
    *,
    recipient: DomainRecord,
    kind: str,
    name: str,
    header: Sequence[str],
    sender: str,
    now: datetime,
) -> Iterator[PendingDelivery]:
    """Write a delivery; it is listed (row inserted in ``connection``'s transaction) only if the
    block succeeds, and its file is in place before that."""
    delivery_id = uuid.uuid4().hex
    path = _file(deployment, delivery_id)
    with atomic_output(path) as handle:
        pending = PendingDelivery(delivery_id, csv.writer(handle), handle)
        pending.writer.writerow(list(header))
        yield pending
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    deployment.files.publish(connection, _name(delivery_id))
    inbox_repo.add(
        connection,
        DeliveryRecord(
            delivery_id,
            recipient.id,
            kind,
            name[:64],
            pending.rows,
            digest,
            sender[:128],
            now,
            None,
        ),
    )


def _recipient(
    deployment: Deployment, connection: Connection, access: Access, domain: str | None
) -> DomainRecord:
    name = access.domain or domain
    if name is None:
        raise InvalidRequest("name the inbox's domain", code="domain_required")
    return deployment.domain(connection, name)


@audited(Action.INBOX_READ, domain_arg=None)
def list_inbox(
    deployment: Deployment,
    *,
    access: Access,
    domain: str | None = None,
    include_acked: bool = False,
) -> list[DeliveryRecord]:
    """The deliveries waiting in the caller's inbox (partner or hub), oldest first."""
    require(access, Action.INBOX_READ, domain)
    with deployment.transaction() as connection:
        recipient = _recipient(deployment, connection, access, domain)
        found = inbox_repo.list_for(
            connection, recipient_id=recipient.id, include_acked=include_acked
        )
        deployment.record(
            connection,
            access,
            action=Action.INBOX_READ,
            domains=[recipient.name],
            counts=Counts(records_out=len(found)),
        )
    return found


def _owned(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    delivery_id: str,
    domain: str | None,
) -> DeliveryRecord:
    recipient = _recipient(deployment, connection, access, domain)
    record = (
        inbox_repo.get(connection, delivery_id=delivery_id) if _ID.fullmatch(delivery_id) else None
    )
    if record is None or record.recipient_id != recipient.id:
        raise NotFound("no such delivery in this inbox", code="unknown_delivery")
    return record


@audited(Action.INBOX_GET, domain_arg=None)
def delivery_file(
    deployment: Deployment, *, access: Access, delivery_id: str, domain: str | None = None
) -> IO[bytes]:
    """A delivery's file, opened for reading, after the access is recorded; the caller closes
    it. Opened first, so that a purge meanwhile cannot cut the reading short (POSIX keeps an
    unlinked file until it is closed); a file already purged answers NotFound ``gone``."""
    require(access, Action.INBOX_READ, domain)
    handle: IO[bytes] | None = None
    try:
        with deployment.transaction() as connection:
            record = _owned(deployment, connection, access, delivery_id, domain)
            try:
                handle = deployment.files.open(_name(record.id))
            except FileNotFoundError:
                raise NotFound("the delivery was purged", code="gone") from None
            deployment.record(
                connection,
                access,
                action=Action.INBOX_GET,
                counts=Counts(records_out=record.rows),
                detail={"delivery": record.id, "kind": record.kind},
            )
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    return handle


@audited(Action.INBOX_ACK, domain_arg=None)
def ack_delivery(
    deployment: Deployment, *, access: Access, delivery_id: str, domain: str | None = None
) -> DeliveryRecord:
    """Acknowledge a delivery: it is purged after the retention period. Returns it as it is
    now (acknowledged; an earlier acknowledgement keeps its time)."""
    require(access, Action.INBOX_ACK, domain)
    with deployment.transaction() as connection:
        record = _owned(deployment, connection, access, delivery_id, domain)
        inbox_repo.ack(connection, delivery_id=record.id, now=access.now)
        record = replace(record, acked_at=record.acked_at or access.now)
        deployment.record(
            connection,
            access,
            action=Action.INBOX_ACK,
            detail={"delivery": record.id, "kind": record.kind},
        )
    return record


@audited(Action.INBOX_PURGE, domain_arg=None)
def purge_inbox(
    deployment: Deployment, *, access: Access, older_than_days: int = RETENTION_DAYS
) -> int:
    """Delete deliveries acknowledged more than ``older_than_days`` ago, files and all, and the
    files a killed writer left behind (see :func:`recover_inbox`)."""
    require(access, Action.INBOX_PURGE)
    orphans = recover_inbox(deployment)
    with deployment.transaction() as connection:
        ids = inbox_repo.purge(
            connection, acked_before=access.now - timedelta(days=older_than_days)
        )
        deployment.record(
            connection,
            access,
            action=Action.INBOX_PURGE,
            counts=Counts(records_in=len(ids)),
            detail={"retention_days": older_than_days, "orphan_files_removed": orphans},
        )
    deployment.files.delete([_name(delivery_id) for delivery_id in ids])
    return len(ids)


def recover_inbox(deployment: Deployment) -> int:
    """Remove what a killed writer left in the inbox directory: temporary files, and files
    renamed into place whose delivery row was never committed. Only files untouched for
    ``job_stale_seconds`` by the wall clock (file times are wall-clock times) are considered,
    so a live writer's delivery is never taken.

    Returns the number of files removed; none of them was ever listed to a recipient.
    """
    directory = _directory(deployment)
    cutoff = time.time() - deployment.settings.job_stale_seconds
    stale = [
        path for path in directory.iterdir() if path.is_file() and path.stat().st_mtime < cutoff
    ]
    if not stale:
        return 0
    removed = 0
    with deployment.transaction() as connection:
        for path in stale:
            delivery_id = path.name.removesuffix(".csv")
            listed = (
                path.suffix == ".csv"
                and _ID.fullmatch(delivery_id) is not None
                and inbox_repo.get(connection, delivery_id=delivery_id) is not None
            )
            if not listed:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
