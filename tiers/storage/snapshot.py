"""The whole database as lines of JSON, and back: what a backup holds (:mod:`tiers.backup`).

Each line is one row: ``{"table": name, "row": {column: value}}``, bytes as ``{"b64": ...}`` and
times as ``{"t": ISO 8601}``. Left out: the key-generation token (restoring keys makes a new
one), state in transit (parts of uploads, rate counters, a Spark job's staged subjects) and
stored files, which a backup holds as files of its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, LargeBinary, func, insert, select

from tiers.storage.tables import (
    UTCDateTime,
    job_nodes,
    job_parts,
    key_generation,
    limit_buckets,
    metadata,
    staged_subjects,
    stored_files,
)

__all__ = ["dump", "load", "read_consistently"]


# Not a backup's: the key generation (restoring keys makes a new one), state in transit (parts,
# counters, what a running Spark job staged) and stored files, which a backup holds as files of
# its own (tiers.backup).
_LEFT_OUT = (key_generation, job_nodes, job_parts, limit_buckets, staged_subjects, stored_files)


def _encode(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict) and "t" in value:
        return datetime.fromisoformat(value["t"])
    return value


def read_consistently(connection: Connection) -> None:
    """Make the rest of ``connection``'s transaction read one snapshot of every table (SQLite's
    reads in one transaction already do; PostgreSQL needs repeatable read)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def dump(connection: Connection) -> bytes:
    """Every row of every table, in an order that restores (parents first)."""
    lines = []
    for table in metadata.sorted_tables:
        if table in _LEFT_OUT:
            continue
        for row in connection.execute(select(table)):
            record = {"table": table.name, "row": {k: _encode(v) for k, v in row._mapping.items()}}
            lines.append(json.dumps(record, sort_keys=True))
    return ("\n".join(lines) + "\n").encode("utf-8")


def load(connection: Connection, lines: Sequence[str]) -> None:
    """Replace every row (those the migrations seed included) by the rows of ``lines``."""
    for table in reversed(metadata.sorted_tables):
        connection.execute(table.delete())
    for line in lines:
        record = json.loads(line)
        connection.execute(
            insert(metadata.tables[record["table"]]), [_typed(record["table"], record["row"])]
        )
    if connection.dialect.name == "postgresql":
        _reset_sequences(connection)


def _typed(table_name: str, row: dict[str, Any]) -> dict[str, Any]:
    table = metadata.tables[table_name]
    out = {}
    for name, value in row.items():
        decoded = _decode(value)
        column = table.c[name]
        if isinstance(column.type, UTCDateTime) and isinstance(decoded, str):
            decoded = datetime.fromisoformat(decoded)
        if isinstance(column.type, LargeBinary) and isinstance(decoded, str):
            decoded = base64.b64decode(decoded)
        out[name] = decoded
    return out


def _reset_sequences(connection: Connection) -> None:
    """After rows were inserted with their ids, PostgreSQL's sequences must move past them."""
    for table in metadata.sorted_tables:
        if "id" in table.c and table.c.id.autoincrement is True:
            highest = select(func.max(table.c.id)).scalar_subquery()
            connection.execute(
                select(
                    func.setval(
                        func.pg_get_serial_sequence(table.name, "id"), func.greatest(highest, 1)
                    )
                )
            )
