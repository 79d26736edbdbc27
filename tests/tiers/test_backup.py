"""Backup, restore into a new home, and master-key rotation."""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from errors import InvalidFile, InvalidRequest, KeyUnavailable
from keys import MasterKey
from tests.archives import read_members, write_members
from tests.conftest import ACCESS, POSTGRES_URL, Database, assert_absent
from tiers.admin import add_domain, initialise
from tiers.audit_ops import lookup_subject, verify_stored
from tiers.backup import backup, restore, rotate_master_key
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.links import associate, dissociate
from tiers.settings import Settings
from tiers.tokenisation import pseudonymise_values

VALUES = ["10000001", "10000002"]


def pseudonyms(deployment: Deployment) -> list[str | object]:
    return pseudonymise_values(
        deployment, access=ACCESS, domain="casino", kind="card", values=VALUES, register=False
    )


def link_cards(deployment: Deployment) -> None:
    """Two partners; the casino's cards VALUES and an SNCF card linked to the first."""
    for name in ("casino", "sncf"):
        add_domain(deployment, access=ACCESS, name=name, role="partner")
    enrol_cards(deployment, access=ACCESS, domain="casino", values=VALUES)
    enrol_cards(deployment, access=ACCESS, domain="sncf", values=["70000001"])
    associate(
        deployment,
        access=ACCESS,
        domain="casino",
        card=VALUES[0],
        other_domain="sncf",
        other_card="70000001",
    )


def test_restore_gives_the_same_pseudonyms_and_a_log_that_verifies(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    add_domain(deployment, access=ACCESS, name="hub", role="hub")
    link_cards(deployment)
    before = pseudonyms(deployment)
    archive = tmp_path / "tiers.backup"
    assert backup(deployment, access=ACCESS, output=archive) > 10
    assert_absent(archive.read_bytes(), VALUES, "the backup")
    # Into a new SQLite home, whatever the source database, with the same master key.
    target = Settings(home=tmp_path / "restored", **database.master_key_settings())  # type: ignore[arg-type]
    report = restore(target, access=ACCESS, archive_path=archive)
    assert report.rows > 10
    restored = Deployment.open(target)
    try:
        assert before == pseudonyms(restored)
        result = verify_stored(restored, access=ACCESS)
        assert result.entries > 5
    finally:
        restored.close()
    with pytest.raises(InvalidRequest):  # a second restore into the same home is refused
        restore(target, access=ACCESS, archive_path=archive)


def test_restore_refuses_another_master_key_and_damaged_archives(
    deployment: Deployment, tmp_path: Path
) -> None:
    archive = tmp_path / "tiers.backup"
    backup(deployment, access=ACCESS, output=archive)
    other = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(KeyUnavailable):
        restore(
            Settings(home=tmp_path / "x", master_key=other), access=ACCESS, archive_path=archive
        )
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(InvalidFile):
        restore(
            Settings(home=tmp_path / "y", master_key=other), access=ACCESS, archive_path=damaged
        )


def test_master_key_rotation_rewraps_every_key_atomically(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    before = pseudonyms(deployment)
    material = os.urandom(32)
    moved = rotate_master_key(
        deployment, access=ACCESS, new_master=MasterKey(material, source="test")
    )
    assert moved >= 4  # base, signing, audit and casino keys at least
    with pytest.raises(KeyUnavailable):
        Deployment.open(database.settings())  # the old master key no longer opens it
    # From a file key to a file key, or from the token to a file (TIERS_TEST_HSM).
    rotated = database.settings(
        master_key_backend="file", master_key=base64.b64encode(material).decode()
    )
    reopened = Deployment.open(rotated)
    try:
        assert before == pseudonyms(reopened)
        assert verify_stored(reopened, access=ACCESS).entries > 3
    finally:
        reopened.close()
    initialise(rotated, access=ACCESS)  # idempotent under the new key


@pytest.mark.postgres
def test_a_backup_restores_into_an_empty_postgresql_database(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    if not POSTGRES_URL or database.backend != "sqlite":
        pytest.skip("restores the SQLite variant's backup into a fresh PostgreSQL schema")
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    enrol_cards(deployment, access=ACCESS, domain="casino", values=VALUES)
    before = pseudonyms(deployment)
    archive = tmp_path / "tiers.backup"
    backup(deployment, access=ACCESS, output=archive)
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    target = Settings(
        home=tmp_path / "pg-home",
        database_url=url.render_as_string(False),
        **database.master_key_settings(),  # type: ignore[arg-type]
    )
    try:
        restore(target, access=ACCESS, archive_path=archive)
        restored = Deployment.open(target)
        try:
            assert before == pseudonyms(restored)
            add_domain(restored, access=ACCESS, name="sncf", role="partner")  # sequences moved on
            assert verify_stored(restored, access=ACCESS).entries > 3
        finally:
            restored.close()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def without_column(archive: Path, target: Path, table: str, column: str) -> Path:
    """``archive`` as a backup made before ``column`` of ``table`` existed (and so before
    backups and rows of power were sealed)."""
    members = read_members(archive)
    manifest = json.loads(members["manifest.json"])
    del manifest["seal"]
    members["manifest.json"] = json.dumps(manifest).encode()
    lines = []
    for line in members["database.jsonl"].decode().splitlines():
        record = json.loads(line)
        if record["table"] == table:
            del record["row"][column]
        if record["table"] == "keyring_seals":
            continue
        record["row"].pop("seal", None)
        lines.append(json.dumps(record, sort_keys=True))
    members["database.jsonl"] = ("\n".join(lines) + "\n").encode()
    return write_members(members, target)


def test_a_backup_made_before_migration_0009_restores_with_the_other_card_searchable(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    link_cards(deployment)
    dissociate(deployment, access=ACCESS, domain="sncf", card="70000001")
    archive = tmp_path / "tiers.backup"
    backup(deployment, access=ACCESS, output=archive)
    old = without_column(archive, tmp_path / "old.backup", "audit_entries", "other_subject")
    target = Settings(home=tmp_path / "restored", **database.master_key_settings())  # type: ignore[arg-type]
    with pytest.raises(InvalidFile) as refused:
        restore(target, access=ACCESS, archive_path=old)
    assert "unsealed_backup" == refused.value.code
    restore(target, access=ACCESS, archive_path=old, accept_unsealed=True)
    restored = Deployment.open(target)
    auditor = replace(ACCESS, role="auditor", actor="dpo")
    try:
        assert verify_stored(restored, access=auditor).entries > 5
        found = lookup_subject(
            restored, access=auditor, domain="sncf", kind="card", value="70000001"
        )
        assert "card_associate" in [entry.action for entry in found]
    finally:
        restored.close()
