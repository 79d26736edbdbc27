"""The insider with write access to the database: every attack of the witnessed-log issue is
detected by `tiers audit verify`, and the service does not sign over it.

Each attack edits the database directly, as its administrator could, and leaves it in a state
that passed verification before the checkpoints left the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from errors import AuditIntegrityError, CheckpointStoreError, LogInconsistent
from tests.conftest import ACCESS, Database
from tests.forgery import delete_checkpoints, engine_of, rewrite
from tiers import _checkpointing as checkpointing
from tiers import _witnessing as witnessing
from tiers.admin import add_domain, initialise
from tiers.alerts import find_alerts
from tiers.audit_ops import export_log, latest_note, purge_log, verify_against, verify_stored
from tiers.deployment import Deployment
from tiers.settings import Settings
from tiers.storage.audit_log import log_origin
from tiers.storage.checkpoint_store import FILE_NAME
from tiers.witness import WitnessHome, init_witness

AUDITOR = replace(ACCESS, role="auditor", actor="dpo")


def _store_lines(database: Database) -> list[str]:
    return (database.home / "checkpoints" / FILE_NAME).read_text().splitlines()


def _grow(deployment: Deployment, names: list[str]) -> None:
    """Operations, each committed and then signed into the store (as a command's would be)."""
    for name in names:
        add_domain(deployment, access=ACCESS, name=name, role="partner")
        deployment.sign_pending()


@pytest.fixture
def witness(deployment: Deployment, tmp_path: Path) -> WitnessHome:
    """A witness of this log (in process: the same decisions as `tiers witness serve`)."""
    init_witness(tmp_path / "witness", "test/witness")
    with deployment.reading() as connection:
        key = deployment.signer(connection).verifier_key(log_origin(connection))
    return WitnessHome(tmp_path / "witness", [key])


def _show(deployment: Deployment, witness: WitnessHome, old: int) -> tuple[int, int]:
    """Send the store's newest checkpoint to ``witness``, proved from ``old``; returns the
    witness's answer and the checkpoint's size."""
    with deployment.reading() as connection:
        latest = deployment.checkpoint_store(connection).latest()
    assert latest is not None
    answer = witness.add_checkpoint(witnessing.request_for(deployment, latest, old))
    return answer.status, latest.size


def _assert_witness_refuses_the_forgery(
    deployment: Deployment, database: Database, witness: WitnessHome, cosigned: int
) -> None:
    """The insider also holds the log's key: they replace the store with one over the forged
    log and show it to the witness, which cosigned the real log up to ``cosigned``."""
    (database.home / "checkpoints" / FILE_NAME).unlink()
    forger = Deployment(database.settings(), deployment.engine, deployment.master)
    checkpointing.adopt(forger, now=ACCESS.now)
    status, _ = _show(forger, witness, cosigned)
    assert status in (400, 409, 422), f"the witness cosigned a forged history ({status})"


def _before_the_attack(
    deployment: Deployment, database: Database, witness: WitnessHome, names: list[str]
) -> tuple[list[str], int]:
    """The honest log grows and a witness cosigns it; returns the store's lines and the size
    the witness cosigned."""
    _grow(deployment, names)
    status, cosigned = _show(deployment, witness, 0)
    assert 200 == status
    return _store_lines(database), cosigned


def _after_the_attack(
    deployment: Deployment,
    database: Database,
    witness: WitnessHome,
    before: tuple[list[str], int],
) -> None:
    """Neither the service nor the witness signs the forgery."""
    lines, cosigned = before
    _assert_not_signed_over(database, lines)
    _assert_witness_refuses_the_forgery(deployment, database, witness, cosigned)


def _assert_writes_refused(database: Database, code: str) -> None:
    """A service opened over a store in this state knows its log cannot be signed, and refuses
    every write that needs the log with ``code``."""
    reopened = Deployment.open(database.settings())
    try:
        assert isinstance(reopened.log_fault, CheckpointStoreError)
        with pytest.raises(CheckpointStoreError) as refused:
            add_domain(reopened, access=ACCESS, name="casino", role="partner")
        assert code == refused.value.code
    finally:
        reopened.close()


def _assert_not_signed_over(database: Database, settings_lines: list[str]) -> None:
    """A service opened over the forged log finds it inconsistent, signs nothing, and refuses
    every write that needs the log."""
    reopened = Deployment.open(database.settings())
    try:
        assert isinstance(reopened.log_fault, LogInconsistent)
        alarms = find_alerts(reopened, access=AUDITOR)
        assert [("log_inconsistent", "service")] == [(a.kind, a.actor) for a in alarms]
        with pytest.raises(LogInconsistent) as refused:
            add_domain(reopened, access=ACCESS, name="forged", role="partner")
        assert "log_inconsistent" == refused.value.code
        assert reopened.sign_pending() is None
    finally:
        reopened.close()
    assert settings_lines == _store_lines(database)


def test_a_whole_rewrite_with_fresh_hashes_is_detected_and_not_re_signed(
    deployment: Deployment, database: Database, witness: WitnessHome
) -> None:
    before = _before_the_attack(deployment, database, witness, ["casino", "sncf", "fnac"])
    delete_checkpoints(database)
    rewrite(database, start=1)
    with pytest.raises(AuditIntegrityError) as found:
        verify_stored(deployment, access=AUDITOR)
    assert "tampered" == found.value.code
    _after_the_attack(deployment, database, witness, before)


def test_a_rewrite_after_the_previous_checkpoint_is_detected(
    deployment: Deployment, database: Database, witness: WitnessHome
) -> None:
    before = _before_the_attack(deployment, database, witness, ["casino", "sncf", "fnac"])
    newest = len(database.audit_entries())
    delete_checkpoints(database, from_size=newest)  # only the newest one
    rewrite(database, start=newest - 1)
    with pytest.raises(AuditIntegrityError) as found:
        verify_stored(deployment, access=AUDITOR)
    assert newest - 1 == found.value.seq
    _after_the_attack(deployment, database, witness, before)


def test_a_fake_purge_is_detected(deployment: Deployment, database: Database) -> None:
    _grow(deployment, ["casino", "sncf"])
    # A size that a checkpoint of the database covers, so that its purge record looks right.
    engine = engine_of(database)
    with engine.connect() as connection:
        sizes = [r[0] for r in connection.execute(text("SELECT tree_size FROM audit_checkpoints"))]
    engine.dispose()
    cut = sorted(sizes)[1]
    rewrite(database, start=len(database.audit_entries()), purge_to=cut)
    with pytest.raises(AuditIntegrityError) as found:
        verify_stored(deployment, access=AUDITOR)
    assert "no purge of them was signed outside the database" in found.value.message


def test_a_real_purge_still_verifies(deployment: Deployment, database: Database) -> None:
    _grow(deployment, ["casino"])
    later = replace(ACCESS, now=ACCESS.now.replace(year=2028))
    assert purge_log(deployment, access=later, older_than_days=30).purged > 0
    deployment.sign_pending()
    assert verify_stored(deployment, access=later).purged > 0


def test_tail_truncation_is_detected_and_not_re_signed(
    deployment: Deployment, database: Database, witness: WitnessHome
) -> None:
    before = _before_the_attack(deployment, database, witness, ["casino", "sncf"])
    delete_checkpoints(database)
    rewrite(database, start=0, drop_tail=2)
    with pytest.raises(AuditIntegrityError) as found:
        verify_stored(deployment, access=AUDITOR)
    assert "missing" in found.value.message
    _after_the_attack(deployment, database, witness, before)


def test_a_kept_checkpoint_catches_a_rewrite_made_with_the_store(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    """An auditor who kept a checkpoint (here, an export) detects a rewrite even when the
    insider also replaced the checkpoint store: verify --against needs only the kept file."""
    _grow(deployment, ["casino", "sncf"])
    export_log(deployment, access=AUDITOR, output=tmp_path / "kept.json")
    kept = (tmp_path / "kept.json").read_bytes()
    assert verify_against(deployment, access=AUDITOR, kept=kept).tree_size > 0
    rewrite(database, start=2)
    store = database.home / "checkpoints"
    (store / FILE_NAME).unlink()
    reopened = Deployment(database.settings(), deployment.engine, deployment.master)
    checkpointing.adopt(reopened, now=ACCESS.now)  # a new store, over the forged log
    with pytest.raises(AuditIntegrityError) as found:
        verify_against(reopened, access=AUDITOR, kept=kept)
    assert "tampered" == found.value.code


def test_a_missing_store_stops_writes_with_its_own_code(
    deployment: Deployment, database: Database
) -> None:
    (database.home / "checkpoints" / FILE_NAME).unlink()
    _assert_writes_refused(database, "checkpoint_store_missing")


def test_a_torn_last_line_is_ignored_and_cut_off(
    deployment: Deployment, database: Database
) -> None:
    path = database.home / "checkpoints" / FILE_NAME
    with path.open("ab") as handle:
        handle.write(b'{"kind": "checkpoint", "note": "tiers/')  # a crash mid-write
    _grow(deployment, ["casino"])
    assert all(json.loads(line) for line in _store_lines(database))
    assert "audit log intact" in verify_stored(deployment, access=AUDITOR).summary()


def test_a_store_shortened_under_a_reader_is_damage(
    deployment: Deployment, database: Database
) -> None:
    _grow(deployment, ["casino", "sncf"])
    path = database.home / "checkpoints" / FILE_NAME
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    with pytest.raises(CheckpointStoreError) as found:
        add_domain(deployment, access=ACCESS, name="fnac", role="partner")
        deployment.sign_pending()
        raise deployment.log_fault or AssertionError("the shortened store was not noticed")
    assert "checkpoint_store_damaged" == found.value.code


_KILL_AFTER_STORE = """
import os, signal, sys
from tiers.deployment import Deployment
from tiers.settings import Settings
from tiers.storage import audit_log
from tiers import _checkpointing as checkpointing, _witnessing as witnessing
from tiers.admin import add_domain, initialise
from tiers.alerts import find_alerts
from tests.conftest import ACCESS

settings = Settings()
deployment = Deployment.open(settings)
add_domain(deployment, access=ACCESS, name="casino", role="partner")
# SIGKILL once the checkpoint is in the store, before the database records it.
audit_log.insert_checkpoint = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
deployment.sign_pending()
"""


def test_a_kill_between_the_store_and_the_commit_is_reconciled(
    deployment: Deployment, database: Database
) -> None:
    before = len(_store_lines(database))
    process = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_STORE],
        check=False,
        cwd=Path(__file__).parents[2],
        env={**os.environ, **database.env(), "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert -signal.SIGKILL == process.returncode
    assert before + 1 == len(_store_lines(database))  # the store has it, the database not
    reopened = Deployment.open(database.settings())
    try:
        assert reopened.log_fault is None
        result = verify_stored(reopened, access=AUDITOR)
        assert "audit log intact" in result.summary()
    finally:
        reopened.close()
    engine = engine_of(database)
    with engine.connect() as connection:
        recorded = connection.execute(text("SELECT max(tree_size) FROM audit_checkpoints"))
        assert recorded.scalar_one() >= len(database.audit_entries()) - 1
    engine.dispose()


def test_a_store_of_another_deployment_is_refused(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    """Two services pointed at one checkpoint store: the second's key does not verify the
    first's checkpoints, and it signs nothing there."""
    other = Settings(home=tmp_path / "other", checkpoint_dir=tmp_path / "shared")
    initialise(other, access=ACCESS)
    shared = database.settings(checkpoint_dir=tmp_path / "shared")
    before = (tmp_path / "shared" / FILE_NAME).read_bytes()
    reopened = Deployment.open(shared)
    try:
        assert isinstance(reopened.log_fault, CheckpointStoreError)
        assert "checkpoint_store_damaged" == reopened.log_fault.code
    finally:
        reopened.close()
    assert before == (tmp_path / "shared" / FILE_NAME).read_bytes()


def test_a_store_that_cannot_be_read_stops_writes(
    deployment: Deployment, database: Database
) -> None:
    path = database.home / "checkpoints" / FILE_NAME
    path.unlink()
    path.mkdir()  # not a file any more
    _assert_writes_refused(database, "checkpoint_store_unreadable")


def test_a_kept_signed_note_proves_the_log_still_extends_it(
    deployment: Deployment, database: Database
) -> None:
    _grow(deployment, ["casino", "sncf"])
    kept = latest_note(deployment, access=AUDITOR).encode()
    assert kept.decode().splitlines()[0].startswith("tiers/")  # a C2SP checkpoint note
    _grow(deployment, ["fnac"])
    result = verify_against(deployment, access=AUDITOR, kept=kept)
    assert "extends the kept checkpoint" in result.summary()
    rewrite(database, start=1)
    with pytest.raises(AuditIntegrityError):
        verify_against(deployment, access=AUDITOR, kept=kept)
