"""Repository of the parts of uploads relayed between nodes (``job_nodes``, ``job_parts``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from tiers.storage.tables import job_nodes, job_parts

__all__ = [
    "JobNode",
    "PartRow",
    "add_part",
    "applied",
    "ask_completion",
    "forget",
    "node_of",
    "part",
    "parts_summary",
    "register",
]


@dataclass(frozen=True, slots=True)
class JobNode:
    node: str
    part_key: str
    complete_parts: int | None


@dataclass(frozen=True, slots=True)
class PartRow:
    sha256: str
    data: bytes | None  # None once the job's node applied it


def register(connection: Connection, *, job_id: str, node: str, part_key: str) -> None:
    connection.execute(insert(job_nodes).values(job_id=job_id, node=node, part_key=part_key))


def node_of(connection: Connection, *, job_id: str) -> JobNode | None:
    row = connection.execute(
        select(job_nodes.c.node, job_nodes.c.part_key, job_nodes.c.complete_parts).where(
            job_nodes.c.job_id == job_id
        )
    ).one_or_none()
    return None if row is None else JobNode(row.node, row.part_key, row.complete_parts)


def part(connection: Connection, *, job_id: str, number: int) -> PartRow | None:
    row = connection.execute(
        select(job_parts.c.sha256, job_parts.c.data).where(
            job_parts.c.job_id == job_id, job_parts.c.number == number
        )
    ).one_or_none()
    return (
        None if row is None else PartRow(row.sha256, None if row.data is None else bytes(row.data))
    )


def add_part(
    connection: Connection, *, job_id: str, number: int, sha256: str, data: bytes | None
) -> None:
    connection.execute(
        insert(job_parts).values(job_id=job_id, number=number, sha256=sha256, data=data)
    )


def applied(connection: Connection, *, job_id: str, number: int, sha256: str) -> None:
    """Part ``number`` is applied: only its digest is kept (inserted if it came locally)."""
    done = connection.execute(
        update(job_parts)
        .where(job_parts.c.job_id == job_id, job_parts.c.number == number)
        .values(data=None)
    )
    if done.rowcount == 0:
        add_part(connection, job_id=job_id, number=number, sha256=sha256, data=None)


def parts_summary(connection: Connection, *, job_id: str) -> tuple[int, int]:
    """How many parts the job holds, and how many of them are applied."""
    row = connection.execute(
        select(func.count(), func.count().filter(job_parts.c.data.is_(None))).where(
            job_parts.c.job_id == job_id
        )
    ).one()
    return int(row[0]), int(row[1])


def ask_completion(connection: Connection, *, job_id: str, parts: int) -> None:
    connection.execute(
        update(job_nodes).where(job_nodes.c.job_id == job_id).values(complete_parts=parts)
    )


def forget(connection: Connection, *, job_id: str) -> None:
    """The job ended: its parts and node are of no more use."""
    connection.execute(delete(job_parts).where(job_parts.c.job_id == job_id))
    connection.execute(delete(job_nodes).where(job_nodes.c.job_id == job_id))
