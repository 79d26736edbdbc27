"""Engines, sessions and migrations for the embedded SQLite and the production PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from errors import ConfigurationError, DatabaseUnavailable, NotInitialised
from tiers import migrations
from tiers.settings import redact_url
from tiers.storage import keystore

__all__ = [
    "SQLITE_BUSY_MS",
    "alembic_config",
    "bulk_load",
    "check_schema",
    "make_engine",
    "migrate",
    "page_cache",
    "scrub_deleted",
]


# How long a SQLite transaction waits for another process's write lock before it fails.
SQLITE_BUSY_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, begin transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted content (destroyed keys, dropped index rows) is overwritten, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # Every transaction appends to the access log, so every transaction writes: take the write
    # lock at BEGIN rather than fail with "database is locked" when upgrading a read later.
    # A connection marked tiers_read_only (Deployment.reading) only reads: a deferred BEGIN.
    options = connection.get_execution_options()
    if options.get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN" if options.get("tiers_read_only") else "BEGIN IMMEDIATE")


def _unavailable(context: ExceptionContext) -> None:
    """A lost or refused connection, or a busy database, is one clear retryable error."""
    if (
        context.is_disconnect
        or isinstance(context.original_exception, (OperationalError, InterfaceError))
        or isinstance(context.sqlalchemy_exception, (OperationalError, InterfaceError))
    ):
        raise DatabaseUnavailable(
            f"the database is unavailable ({type(context.original_exception).__name__})"
        ) from None


def embedded(engine: Engine) -> bool:
    """The database is a file of this machine (SQLite), with one writer at a time, not a
    server."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; raises :class:`ConfigurationError` for an unusable URL."""
    try:
        parsed = make_url(url)
    except SQLAlchemyError:
        raise ConfigurationError("TIERS_DATABASE_URL is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(f"unsupported database {backend!r}: use sqlite or postgresql")
    try:
        engine = create_engine(parsed, pool_pre_ping=backend == "postgresql")
    except (SQLAlchemyError, ImportError) as exc:
        raise ConfigurationError(
            f"cannot use database {redact_url(url)}: {type(exc).__name__}"
        ) from None
    event.listen(engine, "handle_error", _unavailable)
    # A transaction reads the key generation once (keystore.generation): forget the last one's.
    event.listen(engine, "begin", keystore.forget_generation)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")


def check_schema(engine: Engine) -> None:
    """Raise :class:`NotInitialised` unless the schema is at the newest migration."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise NotInitialised(
            f"cannot open the database {redact_url(engine.url.render_as_string())}: "
            f"{type(exc).__name__}; run `tiers init`"
        ) from None
    if current is None:
        raise NotInitialised("the database has no tiers schema; run `tiers init`")
    if current != head:
        raise NotInitialised(f"the database schema is at {current}, not {head}; run `tiers init`")


# SQLite's page cache while a file is loaded into the database: the inserts go to random places
# of large indexes, and the default 2 MB cache sends most of them to the operating system.
BULK_CACHE_KIB = 65536


def bulk_load(connection: Connection) -> AbstractContextManager[None]:
    """A larger page cache on ``connection`` (SQLite) for the length of a bulk load, given back
    afterwards so that idle pooled connections do not each hold one."""
    return page_cache(connection, BULK_CACHE_KIB)


@contextmanager
def page_cache(connection: Connection, kib: int) -> Iterator[None]:
    """SQLite: a page cache of ``kib`` KiB on ``connection`` for the block, then the one it had
    before. PostgreSQL's cache is the server's: nothing to do."""
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    connection.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={int(previous)}")


def scrub_deleted(engine: Engine, *tables: str) -> None:
    """Push deleted rows out of the storage files after a crypto-shred (best effort).

    SQLite (with ``secure_delete``) zeroes freed pages; the write-ahead log still holds old page
    images until it is checkpointed and truncated. PostgreSQL keeps dead tuples until VACUUM.
    Backups taken before the shred still hold the old rows: see SECURITY.md.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            for table in tables:
                connection.exec_driver_sql(f"VACUUM {table}")
