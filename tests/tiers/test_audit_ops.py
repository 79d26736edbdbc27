from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import verify_bundle
from errors import AuditIntegrityError, AuditUnavailable
from tests.conftest import ACCESS, Database
from tiers.admin import add_domain, list_domains
from tiers.audit_ops import export_log, purge_log, read_log, verify_stored
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, tokenise_file
from tiers.tokenisation import pseudonymise_values

FAIL_SQLITE = (
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
)
FAIL_POSTGRES = [
    "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'simulated write failure'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
]


def break_the_log(deployment: Deployment) -> None:
    with deployment.transaction() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(FAIL_SQLITE)
        else:
            for statement in FAIL_POSTGRES:
                connection.exec_driver_sql(statement)


def test_an_operation_whose_entry_cannot_be_written_does_not_happen(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    entries_before = len(database.audit_entries())
    data_before = database.rows()
    break_the_log(deployment)
    with pytest.raises(AuditUnavailable):
        add_domain(deployment, access=ACCESS, name="sncf", role="partner")
    with pytest.raises(AuditUnavailable):
        pseudonymise_values(
            deployment, access=ACCESS, domain="casino", kind="card", values=["12345678"]
        )
    source = tmp_path / "in.csv"
    source.write_text("card\n12345678\n")
    with pytest.raises(AuditUnavailable):
        tokenise_file(
            deployment,
            access=ACCESS,
            source=source,
            output=tmp_path / "out.csv",
            domain="casino",
            columns=[ColumnSpec("card", "card")],
        )
    assert not (tmp_path / "out.csv").exists()
    assert data_before == database.rows()
    assert entries_before == len(database.audit_entries())


def test_reads_are_refused_when_they_cannot_be_logged(deployment: Deployment) -> None:
    break_the_log(deployment)
    with pytest.raises(AuditUnavailable):
        list_domains(deployment, access=ACCESS)
    with pytest.raises(AuditUnavailable):
        read_log(deployment, access=ACCESS)


def test_purge_keeps_the_rest_verifiable(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    # The deployment was initialised at ACCESS.now; the purge runs 400 days later.
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    for value in ("12345678", "23456789", "34567890"):
        pseudonymise_values(deployment, access=ACCESS, domain="casino", kind="card", values=[value])
    recent = replace(ACCESS, now=ACCESS.now + timedelta(days=390))
    pseudonymise_values(
        deployment, access=recent, domain="casino", kind="card", values=["45678901"]
    )
    later = replace(ACCESS, now=ACCESS.now + timedelta(days=400))
    total = len(database.audit_entries())
    result = purge_log(deployment, access=later)
    assert total - 1 == result.purged  # everything but the recent entry
    remaining = database.audit_entries()
    assert [total - 1, total] == [e.seq for e in remaining]
    assert ("audit_purge", 365) == (remaining[-1].action, remaining[-1].detail["retention_days"])
    verification = verify_stored(deployment, access=later)
    assert total - 1 == verification.purged
    bundle = tmp_path / "log.json"
    export_log(deployment, access=later, output=bundle)
    assert total - 1 == verify_bundle(bundle.read_bytes()).purged
    # Purging again finds nothing more to purge.
    assert 0 == purge_log(deployment, access=later).purged


def test_a_damaged_log_is_never_purged(deployment: Deployment, database: Database) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    add_domain(deployment, access=ACCESS, name="sncf", role="partner")
    with deployment.transaction() as connection:
        connection.execute(text("UPDATE audit_entries SET actor = 'x' WHERE seq = 1"))
    before = len(database.audit_entries())
    with pytest.raises(AuditIntegrityError) as caught:
        purge_log(deployment, access=replace(ACCESS, now=ACCESS.now + timedelta(days=400)))
    assert 1 == caught.value.seq
    entries = database.audit_entries()
    assert before + 1 == len(entries)  # nothing purged; the refusal itself is logged
    assert ("audit_purge", "error", "tampered") == (
        entries[-1].action,
        entries[-1].outcome,
        entries[-1].code,
    )


def test_export_is_atomic_and_covers_its_own_entry(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "log.json"
    export_log(deployment, access=ACCESS, output=out)
    result = verify_bundle(out.read_bytes())
    last = read_log(deployment, access=ACCESS)
    assert "audit_export" in [e.action for e in last]
    assert result.tree_size == result.first_seq + result.entries
    assert [] == [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_concurrent_writers_keep_one_unbroken_chain(
    deployment: Deployment, database: Database
) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    before = len(database.audit_entries())
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(8):
                pseudonymise_values(
                    deployment,
                    access=ACCESS,
                    domain="casino",
                    kind="card",
                    values=[f"{worker}{i:07d}"],
                )
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n + 1,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [] == errors
    entries = database.audit_entries()
    assert before + 32 == len(entries)
    assert list(range(len(entries))) == [e.seq for e in entries]
    assert verify_stored(deployment, access=ACCESS).entries == len(entries)
