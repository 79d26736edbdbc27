"""Alembic environment: runs on the connection `tiers` hands it (see tiers.storage.database)."""

from __future__ import annotations

from alembic import context

from tiers.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - tiers always passes its own connection
    raise RuntimeError("run migrations through `tiers init`, not the alembic command line")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
