from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import String, cast, insert, inspect, select

from tests.conftest import ACCESS
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.storage import migrate, subjects
from tiers.storage._dialect import bulk_insert_ignoring_duplicates
from tiers.storage.tables import metadata
from tiers.storage.tables import subjects as subject_table
from tiers.tokenisation import pseudonymise_values


def test_migrations_build_exactly_the_declared_schema(deployment: Deployment) -> None:
    with deployment.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_migrating_twice_changes_nothing(deployment: Deployment) -> None:
    migrate(deployment.engine)
    with deployment.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_no_table_has_a_column_for_clear_identifiers(deployment: Deployment) -> None:
    allowed = {
        "meta": {"name", "value"},
        "domains": {"id", "name", "role", "card_luhn", "created_at"},
        "keys": {
            "id",
            "owner",
            "purpose",
            "version",
            "state",
            "wrapped",
            "created_at",
            "state_changed_at",
        },
        "subjects": {"base", "created_at"},
        "pseudonym_index": {"domain_id", "version", "value", "subject", "created_at"},
        "audit_entries": {"seq", "time", "actor", "action", "outcome", "subject", "entry", "hash"},
        "audit_checkpoints": {"tree_size", "root", "chain", "time", "signature", "key"},
        "audit_state": {
            "id",
            "next_seq",
            "head",
            "frontier",
            "last_checkpoint",
            "purged",
            "purge_frontier",
        },
        "clients": {
            "id",
            "name",
            "role",
            "domain",
            "key_prefix",
            "key_hash",
            "credential_version",
            "active",
            "created_at",
            "revoked_at",
        },
        "jobs": {
            "id",
            "client_id",
            "domain",
            "state",
            "rows_in",
            "rows_out",
            "rows_rejected",
            "error_code",
            "created_at",
            "heartbeat_at",
            "finished_at",
        },
        "cards": {"id", "ref", "partner_id", "base", "enrolled_at", "customer_id", "linked_at"},
        "customers": {
            "id",
            "base",
            "attached_to",
            "attaching_card",
            "rule",
            "policy_version",
            "attached_at",
            "last_transfer_at",
            "created_at",
        },
        "attachments": {
            "id",
            "customer_id",
            "partner_id",
            "card_id",
            "rule",
            "policy_version",
            "decided_at",
            "actor",
        },
        "hub_keys": {"version", "value", "kind", "ref"},
        "policies": {"version", "name", "content", "applied_at", "active"},
        "link_lock": {"id", "changes"},
        "deliveries": {
            "id",
            "recipient_id",
            "kind",
            "name",
            "rows",
            "sha256",
            "sender",
            "created_at",
            "acked_at",
        },
        "withdrawn": {"ref", "withdrawn_at"},
    }
    with deployment.engine.connect() as connection:
        inspector = inspect(connection)
        tables = set(inspector.get_table_names()) - {"alembic_version"}
        assert set(allowed) == tables
        for table in tables:
            assert allowed[table] == {c["name"] for c in inspector.get_columns(table)}


def test_reverse_lookup_uses_the_primary_key_index(deployment: Deployment) -> None:
    with deployment.engine.connect() as connection:
        pk = inspect(connection).get_pk_constraint("pseudonym_index")
    assert pk["constrained_columns"] == ["domain_id", "version", "value"]


def test_registering_twice_keeps_one_subject(deployment: Deployment) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    for _ in range(2):
        pseudonymise_values(
            deployment,
            domain="casino",
            kind="card",
            values=["12345678", "1234 5678", "87654321"],
            access=ACCESS,
        )
    with deployment.engine.connect() as connection:
        domain = deployment.domain(connection, "casino")
        assert subjects.count_index(connection, domain_id=domain.id) == 2


def test_bulk_inserts_store_what_sqlalchemy_inserts_store(deployment: Deployment) -> None:
    """The hot-path insert converts constants with the column's own type: the stored text of a
    timestamp is the same as through SQLAlchemy's usual insert."""
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # no microseconds: formats would differ
    with deployment.transaction() as connection:
        connection.execute(insert(subject_table), [{"base": b"a" * 32, "created_at": now}])
        bulk_insert_ignoring_duplicates(
            connection, subject_table, ["base"], [(b"b" * 32,), (b"a" * 32,)], {"created_at": now}
        )
        stored = connection.execute(
            select(subject_table.c.base, cast(subject_table.c.created_at, String)).order_by(
                subject_table.c.base
            )
        ).all()
        assert [b"a" * 32, b"b" * 32] == [row[0] for row in stored]
        assert stored[0][1] == stored[1][1]
        assert [now, now] == [
            row[0] for row in connection.execute(select(subject_table.c.created_at))
        ]
