"""Backups: a consistent, portable snapshot of the database and the inbox files (wrapped keys
included, never the master key), restored into a new home; and re-wrapping every key under a
new master key, in one transaction."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from audit import Action, Counts
from errors import (
    InvalidFile,
    InvalidRequest,
    KeyUnavailable,
    LogInconsistent,
    NotInitialised,
)
from keys import KeyEncryptionKey, KeyIdentity, unwrap_key, wrap_key
from keys.rows import RowSealer
from tiers import _checkpointing as checkpointing
from tiers import sealing, storage
from tiers._csvio import atomic_binary_output
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import MASTER_CHECK, Deployment
from tiers.filestore import store_for
from tiers.settings import Settings
from tiers.storage import audit_log, check_schema, keystore, make_engine, migrate, snapshot
from tiers.storage import meta as meta_repo
from tiers.storage.checkpoint_store import CheckpointStore

__all__ = ["RestoreReport", "backup", "master_key_status", "restore", "rotate_master_key"]

BACKUP_FORMAT = "tiers-backup/1"


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


@audited(Action.BACKUP, domain_arg=None)
def backup(deployment: Deployment, *, access: Access, output: Path) -> int:
    """Write a backup archive (atomic); returns the number of rows it holds. The backup's own
    entry is recorded first, so the restored log ends with it."""
    require(access, Action.BACKUP)
    with deployment.transaction() as connection:
        deployment.record(connection, access, action=Action.BACKUP)
    with deployment.engine.connect() as connection:
        snapshot.read_consistently(connection)
        revision = MigrationContext.configure(connection).get_current_revision()
        check = meta_repo.get(connection, name=MASTER_CHECK)
        dump = snapshot.dump(connection)
        connection.rollback()
    rows = dump.count(b"\n")
    names = [n for n in deployment.files.names("inbox/") if n.endswith(".csv")]
    manifest: dict[str, object] = {
        "format": BACKUP_FORMAT,
        "revision": revision,
        "master_key_check": check,
        "created_at": access.now.isoformat(),
        "rows": rows,
    }
    # Each inbox file is read to be hashed, then again to be archived: never all at once.
    digests = {name.removeprefix("inbox/"): _file_digest(deployment, name) for name in names}
    manifest["seal"] = deployment.sealer().seal("backup", _seal_fields(manifest, dump, digests))
    with atomic_binary_output(output) as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
        _add(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
        _add(tar, "database.jsonl", dump)
        for name in names:
            _add(tar, name, deployment.files.read_bytes(name))
    return rows


_SEALED = ("format", "revision", "master_key_check", "created_at", "rows")


def _file_digest(deployment: Deployment, name: str) -> str:
    digest = hashlib.sha256()
    with deployment.files.open(name) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _seal_fields(
    manifest: dict[str, Any], dump: bytes, digests: dict[str, str]
) -> list[str | int | bool | None]:
    """What a backup's seal binds: the manifest, the database's rows and every inbox file
    (by its SHA-256, ``digests``)."""
    fields: list[str | int | bool | None] = [str(manifest.get(name)) for name in _SEALED]
    fields.append(hashlib.sha256(dump).hexdigest())
    for name in sorted(digests):
        fields += [name, digests[name]]
    return fields


@dataclass(frozen=True, slots=True)
class RestoreReport:
    rows: int
    files: int
    revision: str


def _read_archive(path: Path) -> tuple[dict[str, Any], bytes, dict[str, bytes]]:
    try:
        with tarfile.open(path, "r:gz") as archive:
            members: dict[str, bytes] = {}
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    members[member.name] = extracted.read()
        manifest = json.loads(members["manifest.json"])
        if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
            raise ValueError("format")
        dump = members["database.jsonl"]
        dump.decode("utf-8")
    except (
        OSError,
        EOFError,
        zlib.error,
        KeyError,
        ValueError,
        tarfile.TarError,
        UnicodeDecodeError,
    ):
        raise InvalidFile("not a tiers backup, or a damaged one", code="bad_backup") from None
    files = {
        name[6:]: data
        for name, data in members.items()
        if name.startswith("inbox/") and re.fullmatch(r"[0-9a-f]{32}\.csv", name[6:])
    }
    return manifest, dump, files


def _check_backup(
    master: KeyEncryptionKey,
    manifest: dict[str, Any],
    dump: bytes,
    files: dict[str, bytes],
    *,
    accept_unsealed: bool,
) -> bool:
    """Refuse a backup made under another master key, or whose seal fails; returns whether it
    has no seal at all (accepted only when ``accept_unsealed``)."""
    if not master.matches(str(manifest.get("master_key_check") or "")):
        raise KeyUnavailable(
            "the master key is not the one the backup was made under", code="wrong_master_key"
        )
    unsealed = "seal" not in manifest
    if unsealed and not accept_unsealed:
        raise InvalidFile(
            "the backup has no seal (it was made before backups were sealed): restore it with "
            "--unsealed only if you know where it has been; nothing was restored",
            code="unsealed_backup",
        )
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    if not unsealed and not RowSealer(master).holds(
        "backup", _seal_fields(manifest, dump, digests), manifest.get("seal")
    ):
        raise InvalidFile(
            "the backup fails its seal: it was changed after it was made; nothing was restored",
            code="bad_backup_seal",
        )
    return unsealed


def restore(
    settings: Settings, *, access: Access, archive_path: Path, accept_unsealed: bool = False
) -> RestoreReport:
    """Restore a backup into a new home or an empty database, under the master key it was made
    with. Raises :class:`InvalidFile` (damaged archive), :class:`InvalidRequest` (the target is
    already initialised) and :class:`KeyUnavailable` (another master key)."""
    manifest, dump, files = _read_archive(archive_path)
    lines = dump.decode("utf-8").splitlines()
    master = settings.load_master_key()
    unsealed = _check_backup(master, manifest, dump, files, accept_unsealed=accept_unsealed)
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not settings.database_url and not settings.database_path.exists():
        os.close(os.open(settings.database_path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = make_engine(settings.resolved_database_url())
    try:
        try:
            check_schema(engine)
        except NotInitialised:
            pass
        else:
            raise InvalidRequest("restore into a new home or an empty database", code="not_empty")
        migrate(engine)
        with engine.begin() as connection:
            snapshot.load(connection, lines)
            stored = store_for(settings.home, engine, embedded=storage.embedded(engine))
            for name, data in files.items():
                stored.put_bytes(connection, f"inbox/{name}", data)
            audit_log.fill_other_subjects(connection)  # a backup made before migration 0009
            if unsealed:  # its rows of power are taken as they are, as the operator asked
                sealing.seal_unsealed(connection, RowSealer(master))
            _check_against_store(Deployment(settings, engine, master), connection)
        if not CheckpointStore(settings.checkpoint_directory, b"").exists():
            checkpointing.adopt(Deployment(settings, engine, master), now=access.now)
    finally:
        engine.dispose()
    deployment = Deployment.open(settings)
    try:
        with deployment.transaction() as connection:
            deployment.record(
                connection,
                access,
                action=Action.RESTORE,
                counts=Counts(records_in=len(lines)),
                detail={"files": len(files), "unsealed": int(unsealed)},
            )
    finally:
        deployment.close()
    return RestoreReport(len(lines), len(files), str(manifest.get("revision")))


def _check_against_store(deployment: Deployment, connection: Connection) -> None:
    """Refuse a backup whose log the checkpoint store already shows to have gone further (or
    elsewhere): restoring it would roll the log back behind what was signed outside the
    database. Without a store (a new home), the restored log is adopted by a new one."""
    if not deployment.checkpoint_store(connection).exists():
        return
    try:
        checkpointing.check_extends(deployment, connection)
    except LogInconsistent:
        raise InvalidRequest(
            "the backup's access log is behind, or not consistent with, the checkpoints signed "
            "outside the database: restoring it would roll the log back",
            code="backup_behind_store",
        ) from None


@audited(Action.MASTER_KEY_ROTATE, domain_arg=None)
def rotate_master_key(
    deployment: Deployment, *, access: Access, new_master: KeyEncryptionKey
) -> int:
    """Re-wrap every live key under ``new_master`` and store its check value, in one
    transaction: either every key moves, or none does. Returns how many were re-wrapped;
    ``deployment`` then holds ``new_master``."""
    require(access, Action.MASTER_KEY_ROTATE)
    moved = 0
    previous = deployment.master
    try:
        with deployment.transaction() as connection:
            for row in keystore.wrapped(connection):
                identity = KeyIdentity(purpose=row.purpose, owner=row.owner, version=row.version)
                assert row.wrapped is not None
                material = unwrap_key(previous, row.wrapped, identity)
                keystore.rewrap(connection, row, wrap_key(new_master, material, identity))
                moved += 1
            keystore.forget_generation(connection)
            meta_repo.put(connection, name=MASTER_CHECK, value=new_master.check_value())
            sealing.reseal_all(connection, RowSealer(new_master))
            # From here the keys open only under the new master key, the signing key of the
            # entry below included (a process that had not unwrapped it yet, as a command
            # line's has not, would otherwise fail here and roll the rotation back).
            deployment.master = new_master
            deployment.record(
                connection,
                access,
                action=Action.MASTER_KEY_ROTATE,
                detail={"keys": moved, "from": previous.backend, "to": new_master.backend},
            )
    except BaseException:
        deployment.master = previous
        raise
    return moved


@audited(Action.MASTER_KEY_STATUS, domain_arg=None)
def master_key_status(deployment: Deployment, *, access: Access) -> dict[str, str | int | bool]:
    """Where the master key is and what its backend says of it (for a key in a token: its
    attributes, never its material), with the database's check value; logged."""
    require(access, Action.MASTER_KEY_STATUS)
    described = deployment.master.describe()
    with deployment.transaction() as connection:
        described["check value"] = meta_repo.get(connection, name=MASTER_CHECK) or ""
        deployment.record(
            connection,
            access,
            action=Action.MASTER_KEY_STATUS,
            detail={"backend": deployment.master.backend},
        )
    return described
