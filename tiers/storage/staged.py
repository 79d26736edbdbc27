"""Repository of the subjects a Spark job's executors stage (``staged_subjects``) and its
driver registers (:mod:`tiers.spark`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, literal, select

from tiers.storage._dialect import bulk_insert_ignoring_duplicates, insert_ignoring_duplicates
from tiers.storage.tables import pseudonym_index, staged_subjects, subjects

__all__ = ["cards", "discard", "register", "stage"]

CARDS_BATCH = 10_000


def stage(
    connection: Connection, *, job: str, domain_id: int, version: int,
    rows: Sequence[tuple[bytes, bytes, str]], now: datetime,
) -> None:  # fmt: skip
    """Stage ``(base, pseudonym value, kind)`` for ``job``, in ``domain_id``'s index at
    ``version`` (a row staged again, by a task Spark ran twice, is kept once)."""
    if rows:
        rows = sorted(rows)  # in the table's order (after the job's name)
        bulk_insert_ignoring_duplicates(
            connection, staged_subjects, ["base", "value", "kind"], rows,
            {"job": job, "domain_id": domain_id, "version": version, "created_at": now},
        )  # fmt: skip


def register(
    connection: Connection, *, job: str, domain_id: int, version: int, now: datetime
) -> int:
    """Register what ``job`` staged, as :func:`tiers.storage.subjects.register` does, in two
    statements; returns how many subjects it staged. Rows staged for another domain or
    version than the driver's (which the executors refuse to produce) are not registered."""
    staged = staged_subjects.c
    mine = (staged.job == job, staged.domain_id == domain_id, staged.version == version)
    connection.execute(
        insert_ignoring_duplicates(connection, subjects).from_select(
            ["base", "created_at"],
            select(staged.base, literal(now, subjects.c.created_at.type)).where(*mine),
        )
    )
    entries = (
        select(
            staged.domain_id, staged.version, staged.value, staged.base,
            literal(now, pseudonym_index.c.created_at.type),
        )
        .where(*mine)
        .order_by(staged.value)  # in the index's order: its pages written once, not at random
    )  # fmt: skip
    connection.execute(
        insert_ignoring_duplicates(connection, pseudonym_index).from_select(
            ["domain_id", "version", "value", "subject", "created_at"], entries
        )
    )
    counted = select(func.count()).select_from(staged_subjects).where(*mine)
    return int(connection.execute(counted).scalar_one())


def cards(connection: Connection, *, job: str, batch: int = CARDS_BATCH) -> Iterator[list[bytes]]:
    """The base pseudonyms ``job`` staged as cards, in key order, in batches of up to ``batch``
    (each read by its own statement, so that the caller may write between them)."""
    staged = staged_subjects.c
    after = b""
    while True:
        statement = (
            select(staged.base)
            .where(staged.job == job, staged.kind == "card", staged.base > after)
            .order_by(staged.base)
            .limit(batch)
        )
        found = [bytes(base) for base in connection.execute(statement).scalars()]
        if not found:
            return
        yield found
        after = found[-1]


def discard(
    connection: Connection, *, job: str | None = None, before: datetime | None = None,
    domain_id: int | None = None, version: int | None = None,
) -> int:  # fmt: skip
    """Drop what ``job`` staged, what was staged ``before`` a time (jobs whose driver is
    gone), or what was staged for a destroyed key ``version`` of ``domain_id``; returns how
    many rows."""
    if job is None and before is None and domain_id is None:
        raise ValueError("discard needs a job, a time or a domain")
    staged = staged_subjects.c
    statement = delete(staged_subjects)
    if job is not None:
        statement = statement.where(staged.job == job)
    if before is not None:
        statement = statement.where(staged.created_at < before)
    if domain_id is not None:
        statement = statement.where(staged.domain_id == domain_id, staged.version == version)
    return int(connection.execute(statement).rowcount or 0)
