"""A fresh PostgreSQL schema for one benchmark run, dropped afterwards: runs never see each
other's data, and the database given is left as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url


@contextmanager
def fresh_schema(url: str | None) -> Iterator[str | None]:
    """``url`` pointed at a new, empty schema (None stays None: SQLite)."""
    if url is None:
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        engine.dispose()
