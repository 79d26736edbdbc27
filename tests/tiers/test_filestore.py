"""Stored files (tiers.filestore): the home's folders on SQLite, the database's chunks on
PostgreSQL, read back whole, never half published, never half deleted under a reader."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiers.deployment import Deployment
from tiers.filestore import DatabaseFiles, FileStore, file_size


def _store(deployment: Deployment) -> FileStore:
    """The deployment's store, with chunks of 7 bytes on PostgreSQL, so that small files
    cross chunk boundaries."""
    if deployment.embedded:
        return deployment.files
    return DatabaseFiles(deployment.settings.home, deployment.engine, chunk=7)


def _publish(deployment: Deployment, store: FileStore, name: str, data: bytes) -> None:
    store.staging(name).write_bytes(data)
    with deployment.engine.begin() as connection:
        store.publish(connection, name)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=60))
def test_a_published_file_reads_back_whole(deployment: Deployment, data: bytes) -> None:
    store = _store(deployment)
    _publish(deployment, store, "jobs/aa/output.csv", data)
    with store.open("jobs/aa/output.csv") as handle:
        assert len(data) == file_size(handle)
        assert data == handle.read()
    assert ["jobs/aa/output.csv"] == store.names("jobs/")
    # On PostgreSQL the file left the disk for the database: another node serves it.
    assert deployment.embedded == store.staging("jobs/aa/output.csv").exists()


def test_a_file_whose_transaction_failed_is_not_there(deployment: Deployment) -> None:
    store = _store(deployment)
    store.staging("inbox/x.csv").write_bytes(b"linking_key\n")
    with pytest.raises(RuntimeError), deployment.engine.begin() as connection:
        store.publish(connection, "inbox/x.csv")
        raise RuntimeError("the delivery's row failed")
    if not deployment.embedded:
        assert [] == store.names("inbox/")
        with pytest.raises(FileNotFoundError):
            store.open("inbox/x.csv")


def test_a_reader_reads_whole_a_file_deleted_meanwhile(deployment: Deployment) -> None:
    store = _store(deployment)
    data = bytes(range(256)) * 3
    _publish(deployment, store, "jobs/bb/output.csv", data)
    with store.open("jobs/bb/output.csv") as handle:
        first = handle.read(10)
        store.delete(["jobs/bb/"])
        assert data == first + handle.read()
    assert [] == store.names("jobs/")
    with pytest.raises(FileNotFoundError):
        store.open("jobs/bb/output.csv")


def test_deleting_a_folder_takes_only_that_folder(deployment: Deployment) -> None:
    store = _store(deployment)
    for name in ("jobs/a_/output.csv", "jobs/ab/output.csv", "jobs/a_/rejects.csv"):
        _publish(deployment, store, name, b"pseudonym\n")
    store.delete(["jobs/a_/"])  # "_" is a wildcard of SQL's LIKE: it must not match "b"
    assert ["jobs/ab/output.csv"] == store.names("jobs/")
    assert b"pseudonym\n" == store.read_bytes("jobs/ab/output.csv")


def test_an_empty_file_is_a_file(deployment: Deployment) -> None:
    store = _store(deployment)
    _publish(deployment, store, "inbox/empty.csv", b"")
    assert b"" == store.read_bytes("inbox/empty.csv")
    assert ["inbox/empty.csv"] == store.names("inbox/")
