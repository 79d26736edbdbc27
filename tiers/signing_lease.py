"""Which process of a deployment signs checkpoints and talks to the witnesses.

Every node of a PostgreSQL deployment appends to the one access log (the database sequences the
entries); exactly one of them at a time signs checkpoints over it and sends them to the
witnesses: the one holding the *signing lease*, a session advisory lock of PostgreSQL held on a
connection of its own. The others skip their turn. If the holder stops, or dies, or loses its
host, its session ends, the server releases the lock, and the first other node to try takes it
(within ``TIERS_AUDIT_CHECKPOINT_SECONDS``). Signing stays safe even without the lease (every
signature is made under the audit state's row lock, against the shared checkpoint store); the
lease keeps the nodes from queueing on it and from signing the same entries twice.

On SQLite (one host) every process may sign, as before: the lease is always held.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from errors import DatabaseUnavailable
from tiers.storage import audit_log, embedded
from tiers.storage import leases as leases_repo

__all__ = ["SigningLease"]


def lease_key(origin: str) -> int:
    """The advisory lock's key for the log of ``origin``: deployments that share a database
    server (a schema each) have leases of their own."""
    digest = hashlib.sha256(b"tiers signing lease\n" + origin.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_log = logging.getLogger("tiers.audit")


class SigningLease:
    """The signing lease of one process (see the module docstring)."""

    def __init__(self, engine: Engine, key: int) -> None:
        self._engine = engine
        self.key = key
        self._shared = not embedded(engine)
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, engine: Engine) -> SigningLease:
        """The lease of the deployment on ``engine`` (keyed by its log's origin)."""
        if embedded(engine):
            return cls(engine, 0)
        with engine.connect() as connection:
            return cls(engine, lease_key(audit_log.log_origin(connection)))

    def held(self) -> bool:
        """Whether this process holds the lease now, taking it if it is free; False while the
        database does not answer (a lease that may have been lost is never assumed)."""
        if not self._shared:
            return True
        with self._lock:
            try:
                if self._connection is None:
                    self._take()
                else:  # still ours only while the session lives
                    self._connection.exec_driver_sql("SELECT 1")
            except (SQLAlchemyError, DatabaseUnavailable):
                self._drop()
            return self._connection is not None

    def _take(self) -> None:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = leases_repo.take(connection, key=self.key)
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        if taken:
            self._connection = connection
            _log.info("this process now signs the access log's checkpoints")
        else:
            connection.close()

    def _drop(self) -> None:
        """Forget a connection that failed: closed for good, never back to the pool (its
        session might still hold the lock)."""
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None
            _log.warning("this process lost the checkpoint signing lease")

    def release(self) -> None:
        """Give the lease up (the service stops), so that another node takes it at once."""
        with self._lock:
            if self._connection is None:
                return
            try:
                leases_repo.release(self._connection, key=self.key)
                self._connection.close()
            except (SQLAlchemyError, DatabaseUnavailable):
                self._drop()
            self._connection = None
