"""Persistence: the schema, engines and migrations, and the repository modules."""

from __future__ import annotations

from tiers.storage._held_inserts import SortedInserts, sorted_inserts
from tiers.storage.database import (
    SQLITE_BUSY_MS,
    bulk_load,
    check_schema,
    embedded,
    make_engine,
    migrate,
    scrub_deleted,
)

__all__ = [
    "SQLITE_BUSY_MS",
    "SortedInserts",
    "bulk_load",
    "check_schema",
    "embedded",
    "make_engine",
    "migrate",
    "scrub_deleted",
    "sorted_inserts",
]
