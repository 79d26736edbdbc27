from __future__ import annotations

from datetime import UTC, datetime
from hashlib import sha256

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, String, cast, delete, insert, inspect, select

from tests.conftest import ACCESS, Database
from tiers.admin import add_domain, initialise, rotate_key
from tiers.deployment import Deployment
from tiers.storage import _dialect, bulk_load, inbox, links, migrate, subjects
from tiers.storage._dialect import (
    COPY_THRESHOLD,
    DRIVER_IN_CHUNK,
    bulk_insert_ignoring_duplicates,
)
from tiers.storage.database import BULK_CACHE_KIB, alembic_config
from tiers.storage.links import insert_hub_keys
from tiers.storage.tables import cards as card_table
from tiers.storage.tables import hub_keys, metadata, pseudonym_index, withdrawn
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
        "domains": {"id", "name", "role", "card_luhn", "created_at", "blind_only", "seal"},
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
        "key_generation": {"id", "token"},
        "subjects": {"base", "created_at"},
        "pseudonym_index": {"domain_id", "version", "value", "subject", "created_at"},
        "audit_entries": {
            "seq",
            "time",
            "actor",
            "action",
            "outcome",
            "subject",
            "other_subject",
            "entry",
            "hash",
        },
        "audit_checkpoints": {"tree_size", "root", "chain", "time", "signature", "key", "origin"},
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
            "seal",
        },
        "keyring_seals": {"owner", "purpose", "seal"},
        "audit_subjects": {"bucket", "seq", "refs"},
        "client_requests": {
            "id",
            "kind",
            "name",
            "role",
            "domain",
            "requested_by",
            "requested_at",
            "expires_at",
            "state",
            "decided_by",
            "decided_at",
            "seal",
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
        # pseudonymised files only (the tests of tiers.filestore search them for clear values)
        "stored_files": {"name", "chunk", "data"},
        "job_nodes": {"job_id", "node", "part_key", "complete_parts"},
        # a part's data is encrypted under the job's key until applied (tests/api/test_relay.py)
        "job_parts": {"job_id", "number", "sha256", "data"},
        "limit_buckets": {"key", "first", "second", "at"},
        # pseudonyms only, as the index holds them (tests/tiers/test_spark.py)
        "staged_subjects": {"job", "base", "domain_id", "version", "value", "kind", "created_at"},
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
        # a session's token is kept by its SHA-256 only
        "console_sessions": {
            "token_hash",
            "client_id",
            "credential_version",
            "purpose",
            "created_at",
            "seen_at",
            "seal",
        },
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


def _bases(connection: Connection) -> set[bytes]:
    return set(connection.execute(select(subject_table.c.base)).scalars())


@pytest.mark.parametrize(
    ("size", "new_rows_share"), [(3, 0), (COPY_THRESHOLD + 7, 0), (COPY_THRESHOLD + 7, 10**9)]
)
def test_bulk_inserts_big_and_small_ignore_duplicates_and_keep_nothing_stale(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, size: int, new_rows_share: int
) -> None:
    """Every way of a bulk insert (PostgreSQL copies big batches through a temporary table, then
    inserts them ignoring conflicts, or, share 10**9, inserts the rows not there yet):
    duplicates in the batch and in the table are ignored, a second batch in the same
    transaction holds only its own rows, a rolled-back batch leaves nothing, and the next
    transaction can insert again."""
    monkeypatch.setattr(_dialect, "NEW_ROWS_SHARE", new_rows_share)
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    first = [i.to_bytes(32, "big") for i in range(size)]
    second = [(i + size).to_bytes(32, "big") for i in range(size)]
    with deployment.transaction() as connection:
        connection.execute(insert(subject_table), [{"base": first[0], "created_at": now}])
        rows = [(base,) for base in first] + [(first[1],)]  # a duplicate in the batch
        bulk_insert_ignoring_duplicates(
            connection, subject_table, ["base"], rows, {"created_at": now}
        )
        assert _bases(connection) == set(first)
        connection.execute(delete(subject_table))
        bulk_insert_ignoring_duplicates(
            connection, subject_table, ["base"], [(base,) for base in second], {"created_at": now}
        )
        assert _bases(connection) == set(second)  # nothing of the first batch came back
    try:
        with deployment.transaction() as connection:
            bulk_insert_ignoring_duplicates(
                connection,
                subject_table,
                ["base"],
                [(base,) for base in first],
                {"created_at": now},
            )
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with deployment.transaction() as connection:
        assert _bases(connection) == set(second)
        bulk_insert_ignoring_duplicates(
            connection, subject_table, ["base"], [(base,) for base in first], {"created_at": now}
        )
        assert _bases(connection) == set(first) | set(second)
        stamps = set(connection.execute(select(cast(subject_table.c.created_at, String))).scalars())
        assert len(stamps) == 1  # the timestamp stored the same way, whichever path
        assert [now] == list(
            connection.execute(select(subject_table.c.created_at).distinct()).scalars()
        )


def test_a_bulk_load_enlarges_the_page_cache_for_its_length(deployment: Deployment) -> None:
    with deployment.transaction() as connection:
        if connection.dialect.name != "sqlite":
            with bulk_load(connection):  # nothing to tune: the server's cache is shared
                assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
            return
        before = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
        with bulk_load(connection):
            during = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
        after = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    assert during == -BULK_CACHE_KIB  # negative: KiB rather than pages
    assert after == before != during


def test_bulk_inserts_of_every_column_type_store_the_values_given(
    deployment: Deployment,
) -> None:
    """Integers, bytes and text through the big-batch path (COPY on PostgreSQL), twice."""
    rows = [
        {"version": 1 + i % 3, "value": i.to_bytes(20, "big"), "kind": "card", "ref": bytes(32)}
        for i in range(COPY_THRESHOLD + 1)
    ]
    with deployment.transaction() as connection:
        insert_hub_keys(connection, rows)
        insert_hub_keys(connection, rows)
        stored = connection.execute(
            select(hub_keys.c.version, hub_keys.c.value, hub_keys.c.kind, hub_keys.c.ref)
        ).all()
    assert sorted(tuple(row) for row in stored) == sorted(
        (r["version"], r["value"], r["kind"], r["ref"]) for r in rows
    )


@given(withdrawn_count=st.integers(0, 40), asked=st.lists(st.integers(0, 80), max_size=60))
def test_withdrawn_refs_finds_exactly_the_withdrawn_ones(
    deployment: Deployment, withdrawn_count: int, asked: list[int]
) -> None:
    refs = [n.to_bytes(32, "big") for n in range(81)]
    with deployment.engine.begin() as connection:
        connection.execute(delete(withdrawn))
        inbox.mark_withdrawn(connection, refs=refs[:withdrawn_count], now=ACCESS.now)
        found = inbox.withdrawn_refs(connection, refs=[refs[n] for n in asked])
    assert found == {refs[n] for n in asked if n < withdrawn_count}
    assert all(type(ref) is bytes for ref in found)


def test_withdrawn_refs_looks_at_every_ref_of_a_long_list(deployment: Deployment) -> None:
    """Longer than two chunks, every ref withdrawn: none may be missed at a chunk's edge."""
    refs = [n.to_bytes(32, "big") for n in range(2 * DRIVER_IN_CHUNK + 3)]
    others = [(n + len(refs)).to_bytes(32, "big") for n in range(len(refs))]
    with deployment.engine.begin() as connection:
        inbox.mark_withdrawn(connection, refs=refs, now=ACCESS.now)
        assert inbox.withdrawn_refs(connection, refs=refs) == set(refs)
        assert inbox.withdrawn_refs(connection, refs=others) == set()


@pytest.mark.parametrize("batch", [1, 7, 10_000])
def test_a_reindex_walks_each_entry_of_the_version_once_whatever_the_batch(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """A rotation re-derives a version batch by batch, restarting after the last value seen."""
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    pairs = [(sha256(bytes([n])).digest(), sha256(bytes([n, 1])).digest()[:20]) for n in range(50)]

    def derive(base: bytes) -> bytes:
        seen.append(base)
        return sha256(base + b"v2").digest()[:20]

    seen: list[bytes] = []
    monkeypatch.setattr(subjects, "REINDEX_BATCH", batch)
    with deployment.transaction() as connection:
        domain_id = deployment.domain(connection, "casino").id
        subjects.register(connection, domain_id=domain_id, version=1, pairs=pairs, now=now)
        count = subjects.reindex(
            connection, domain_id=domain_id, from_version=1, to_version=2, derive=derive, now=now
        )
        assert count == len(pairs)
        assert sorted(seen) == sorted(base for base, _ in pairs)
        for base, _ in pairs:
            value = sha256(base + b"v2").digest()[:20]
            assert subjects.lookup(connection, domain_id=domain_id, version=2, value=value) == base


def test_migration_0008_drops_the_index_by_subject_in_place_and_keeps_every_entry(
    deployment: Deployment,
) -> None:
    """A deployment at 0007, whose pseudonym index was also indexed by subject, upgrades in
    place: its entries stay and a rotation still re-derives each of them. The downgrade gives
    the index back."""
    dropped = "ix_pseudonym_index_subject_domain_id"

    def indexes() -> set[str]:
        with deployment.engine.connect() as connection:
            return {
                str(index["name"]) for index in inspect(connection).get_indexes("pseudonym_index")
            }

    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    cards = ["49701012345678", "49701012345679", "49701012345680"]
    pseudonymise_values(deployment, access=ACCESS, domain="casino", kind="card", values=cards)
    with deployment.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0007")
    assert dropped in indexes()
    migrate(deployment.engine)
    assert dropped not in indexes()
    with deployment.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        domain_id = deployment.domain(connection, "casino").id
        assert subjects.count_index(connection, domain_id=domain_id, version=1) == len(cards)
    rotation = rotate_key(deployment, access=ACCESS, domain="casino")
    assert rotation.reindexed == len(cards)


def test_migration_0010_drops_the_keys_of_registrations_in_place_and_keeps_every_row(
    deployment: Deployment, database: Database
) -> None:
    """A deployment at 0009 upgrades in place: its index entries and cards stay as they were,
    without their foreign keys to the subjects and domains, and the cards without their unique
    key (partner, subject). The downgrade gives them back."""

    def keys() -> dict[str, list[tuple[str, ...]]]:
        with deployment.engine.connect() as connection:
            found = inspect(connection)
            return {
                table: sorted(
                    [
                        *(
                            (key["constrained_columns"][0], key["referred_table"])
                            for key in found.get_foreign_keys(table)
                        ),
                        *(
                            tuple(key["column_names"])
                            for key in found.get_unique_constraints(table)
                        ),
                    ]
                )
                for table in ("pseudonym_index", "cards")
            }

    def rows() -> dict[str, list[tuple[object, ...]]]:
        return {
            table: rows for table, rows in database.rows().items() if table != "alembic_version"
        }

    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    cards = ["49701012345678", "49701012345679", "49701012345680"]
    pseudonymise_values(deployment, access=ACCESS, domain="casino", kind="card", values=cards)
    with deployment.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0009")
    assert {
        "pseudonym_index": [("domain_id", "domains"), ("subject", "subjects")],
        "cards": [
            ("base", "subjects"),
            ("customer_id", "customers"),
            ("partner_id", "base"),
            ("partner_id", "domains"),
            ("ref",),
        ],
    } == keys()
    before = rows()
    assert len(cards) == len(before["cards"]) == len(before["pseudonym_index"])
    with deployment.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0010")
    assert {"pseudonym_index": [], "cards": [("customer_id", "customers"), ("ref",)]} == keys()
    assert before == rows()
    initialise(database.settings(), access=ACCESS)  # the later migrations, and the seals
    with deployment.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_migration_0011_keeps_subjects_and_index_entries_in_their_key_order_and_every_row(
    deployment: Deployment, database: Database
) -> None:
    """A deployment at 0010 upgrades in place: on SQLite the subjects and the index entries
    become tables without rowid, each row kept as it was, and a rotation still re-derives each
    entry; on PostgreSQL nothing changes. The downgrade gives the rowid tables back."""
    rebuilt = ("subjects", "pseudonym_index")

    def without_rowid() -> dict[str, bool]:
        with deployment.engine.connect() as connection:
            if connection.dialect.name != "sqlite":
                return dict.fromkeys(rebuilt, False)
            sql = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master").all())
            return {table: "WITHOUT ROWID" in sql[table] for table in rebuilt}

    def rows() -> dict[str, list[tuple[object, ...]]]:
        return {
            table: rows for table, rows in database.rows().items() if table != "alembic_version"
        }

    sqlite = deployment.embedded
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    cards = [f"4970101234{n:04d}" for n in range(40)]
    pseudonymise_values(deployment, access=ACCESS, domain="casino", kind="card", values=cards)
    assert without_rowid() == dict.fromkeys(rebuilt, sqlite)
    with deployment.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0010")
    assert without_rowid() == dict.fromkeys(rebuilt, False)
    before = rows()
    assert len(before["subjects"]) == len(before["pseudonym_index"]) == len(cards)
    with deployment.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0011")
    assert without_rowid() == dict.fromkeys(rebuilt, sqlite)
    assert before == rows()
    initialise(database.settings(), access=ACCESS)  # the later migrations, and the seals
    with deployment.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    rotation = rotate_key(deployment, access=ACCESS, domain="casino")
    assert rotation.reindexed == len(cards)


def test_the_integrity_check_after_each_test_finds_each_fault(
    deployment: Deployment, database: Database
) -> None:
    """What the schema no longer checks (migration 0010), the test suite does after every test:
    here each fault is made, counted, and taken away again."""
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    add_domain(deployment, access=ACCESS, name="hub", role="hub")
    pseudonymise_values(
        deployment, access=ACCESS, domain="casino", kind="card", values=["49701012345678"]
    )
    assert not any(database.integrity_faults().values())
    with deployment.engine.begin() as connection:
        (card,) = connection.execute(select(card_table)).mappings()
        row = {**card, "id": card["id"] + 1, "ref": bytes(32)}
        connection.execute(insert(card_table).values(**row))  # the same card, twice
        unknown = {"id": 9, "ref": b"\1" * 32, "base": b"\2" * 32}  # a subject nobody registered
        connection.execute(insert(card_table).values(**{**row, **unknown}))
        # Neither has a hub key; the second is withdrawn, so it needs none.
        connection.execute(insert(withdrawn).values(ref=unknown["ref"], withdrawn_at=ACCESS.now))
        connection.execute(
            insert(pseudonym_index).values(
                domain_id=99,
                version=1,
                value=bytes(20),
                subject=card["base"],
                created_at=ACCESS.now,
            )
        )
    assert {
        "pseudonym_index.subject dangling": 0,
        "pseudonym_index.domain_id dangling": 1,
        "cards.base dangling": 1,
        "cards.partner_id dangling": 0,
        "cards twice": 1,
        "cards without a hub key": 1,
    } == database.integrity_faults()
    with deployment.engine.begin() as connection:
        connection.execute(delete(card_table).where(card_table.c.id != card["id"]))
        connection.execute(delete(withdrawn))
        connection.execute(delete(pseudonym_index).where(pseudonym_index.c.domain_id == 99))
    assert not any(database.integrity_faults().values())
    with deployment.engine.begin() as connection:
        connection.execute(delete(hub_keys))
    assert {"cards without a hub key": 1} == {
        fault: n for fault, n in database.integrity_faults().items() if n
    }
    with deployment.engine.begin() as connection:
        connection.execute(insert(withdrawn).values(ref=card["ref"], withdrawn_at=ACCESS.now))
    assert not any(database.integrity_faults().values())


def test_hub_values_take_the_version_asked_and_card_customers_the_enrolled_cards(
    deployment: Deployment,
) -> None:
    refs = [bytes([n]) * 32 for n in range(1, 4)]

    class Undone(Exception):
        """Rolls the rows back: a card of no subject would be an integrity fault."""

    with pytest.raises(Undone), deployment.transaction() as connection:
        # Two versions of the first ref's key, the newer stored first.
        insert_hub_keys(
            connection,
            [
                {"version": 2, "value": b"\x02" * 20, "kind": "card", "ref": refs[0]},
                {"version": 1, "value": b"\x01" * 20, "kind": "card", "ref": refs[0]},
                {"version": 1, "value": b"\x03" * 20, "kind": "card", "ref": refs[1]},
            ],
        )
        asked = [refs[0], refs[1], refs[0], refs[2]]
        assert links.hub_values(connection, refs=asked, version=2) == {refs[0]: b"\x02" * 20}
        assert links.hub_values(connection, refs=asked, version=1) == {
            refs[0]: b"\x01" * 20,
            refs[1]: b"\x03" * 20,
        }
        links.enrol(connection, partner_id=1, cards_=[(refs[1], b"\x09" * 32)], now=ACCESS.now)
        assert links.card_customers(connection, refs=refs) == {refs[1]: None}
        assert links.card_customers(connection, refs=[]) == {}
        raise Undone
