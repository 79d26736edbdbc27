"""The checkpoint store: the log's signed checkpoints, kept outside the database.

One append-only file, ``checkpoints.log`` in the store's folder (``TIERS_CHECKPOINT_DIR``,
default ``$TIERS_HOME/checkpoints``), one JSON record a line, each appended with ``O_APPEND``
and fsynced before the database commits what it covers:

- ``{"kind": "origin", "origin": …, "created": …}``: the first line, written by ``tiers init``;
- ``{"kind": "checkpoint", "note": …, "range": […], "purge": false}``: a signed checkpoint as
  the C2SP signed note itself, and the compact range of the tree at its size (the hashes of the
  maximal complete subtrees, public, checked against the signed root when read), from which the
  next consistency proof is made without trusting the database;
- ``{"kind": "cosigned", "size": …, "lines": …}``: witnesses' cosignature lines for a checkpoint.

A record is read back only if its note verifies under the log's key. A last line without its
newline is a write a crash cut short (nothing in the database relies on it: the checkpoint is
committed there only after the fsync): it is ignored, and cut off before the next append.
Anything else that does not parse, or a file shorter than it was, is damage.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from audit import Checkpoint, CompactRange
from audit.checkpoint import checkpoint_from_note
from audit.note import Note, NoteSignature
from tiers.errors import AuditIntegrityError, CheckpointStoreError

__all__ = ["FILE_NAME", "CheckpointStore", "StoredCheckpoint"]

FILE_NAME = "checkpoints.log"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint of the store, its compact range, and the cosignatures it gathered."""

    checkpoint: Checkpoint
    frontier: tuple[bytes, ...]
    purge: bool = False
    cosignatures: tuple[NoteSignature, ...] = ()

    @property
    def size(self) -> int:
        return self.checkpoint.tree_size

    def compact_range(self) -> CompactRange:
        return CompactRange(self.size, self.frontier)


@dataclass(slots=True)
class _Read:
    offset: int = 0
    origin: str | None = None
    records: list[StoredCheckpoint] = field(default_factory=list)


def _damaged(message: str) -> CheckpointStoreError:
    return CheckpointStoreError(
        f"the checkpoint store is damaged: {message}", code="checkpoint_store_damaged"
    )


class CheckpointStore:
    """The store in ``directory``, read with the log's public key. Reads are incremental: each
    call reads only what was appended since the last (by any process)."""

    def __init__(self, directory: Path, public_key: bytes) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME
        self._public_key = public_key
        self._read = _Read()

    def __repr__(self) -> str:
        return f"<CheckpointStore {self.directory}>"

    def exists(self) -> bool:
        return self.path.exists()

    def create(self, *, origin: str, now: datetime) -> None:
        """Create the store with its origin record; refuses to overwrite one."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError:
            raise CheckpointStoreError(
                "a checkpoint store is already there", code="checkpoint_store_exists"
            ) from None
        except OSError as exc:
            raise self._unwritable(exc) from None
        record = {"kind": "origin", "origin": origin, "created": now.isoformat()}
        try:
            os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._sync_directory()

    def origin(self) -> str:
        self._refresh()
        assert self._read.origin is not None
        return self._read.origin

    def records(self) -> list[StoredCheckpoint]:
        """Every checkpoint of the store, in the order they were appended."""
        self._refresh()
        return list(self._read.records)

    def latest(self) -> StoredCheckpoint | None:
        """The newest checkpoint of the log's growth (purge marks are not its growth)."""
        self._refresh()
        grown = [r for r in self._read.records if not r.purge]
        return grown[-1] if grown else None

    def at(self, size: int) -> StoredCheckpoint | None:
        self._refresh()
        found = [r for r in self._read.records if r.size == size]
        return found[-1] if found else None

    def append_checkpoint(
        self, checkpoint: Checkpoint, frontier: list[bytes], *, purge: bool = False
    ) -> None:
        note = checkpoint.note(self._public_key).encode()
        record = {
            "kind": "checkpoint",
            "note": note,
            "range": [node.hex() for node in frontier],
            "purge": purge,
        }
        self._append(record)

    def append_cosignatures(self, size: int, lines: list[NoteSignature]) -> None:
        text = "".join(line.line() for line in lines)
        self._append({"kind": "cosigned", "size": size, "lines": text})

    # -- reading ---------------------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            with self.path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self._read.offset:
                    raise _damaged("it is shorter than it was")
                handle.seek(self._read.offset)
                data = handle.read()
        except FileNotFoundError:
            raise CheckpointStoreError(
                f"no checkpoint store at {self.directory}: the checkpoints that vouch for the "
                "access log are missing (see SECURITY.md, 'Recovery')",
                code="checkpoint_store_missing",
            ) from None
        except OSError as exc:
            raise CheckpointStoreError(
                f"the checkpoint store cannot be read ({type(exc).__name__})",
                code="checkpoint_store_unreadable",
            ) from None
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line is not read
        for line in complete.splitlines():
            self._take(line)
        self._read.offset += len(complete)
        if self._read.origin is None:
            raise _damaged("it has no origin record")

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
            kind = record["kind"]
            if self._read.origin is None:
                if kind != "origin":
                    raise ValueError("first record")
                self._read.origin = str(record["origin"])
            elif kind == "checkpoint":
                self._read.records.append(self._checkpoint(record))
            elif kind == "cosigned":
                self._cosigned(int(record["size"]), str(record["lines"]))
            else:
                raise ValueError("kind")
        except (ValueError, KeyError, TypeError, AuditIntegrityError):
            raise _damaged(f"a record after byte {self._read.offset} does not verify") from None

    def _checkpoint(self, record: dict[str, object]) -> StoredCheckpoint:
        checkpoint = checkpoint_from_note(Note.parse(str(record["note"])), self._public_key)
        raw = record["range"]
        if not isinstance(raw, list):
            raise TypeError("range")
        frontier = tuple(bytes.fromhex(str(node)) for node in raw)
        stored = StoredCheckpoint(checkpoint, frontier, bool(record.get("purge", False)))
        if stored.compact_range().root() != checkpoint.root:
            raise ValueError("range")
        if checkpoint.origin != self._read.origin:
            raise ValueError("origin")
        return stored

    def _cosigned(self, size: int, lines: str) -> None:
        records = self._read.records
        for index in range(len(records) - 1, -1, -1):
            if records[index].size == size and not records[index].purge:
                extra = Note.parse("x\n\n" + lines).signatures
                old = records[index]
                merged = old.cosignatures + tuple(s for s in extra if s not in old.cosignatures)
                records[index] = StoredCheckpoint(old.checkpoint, old.frontier, False, merged)
                return
        raise ValueError("cosignatures of an unknown checkpoint")

    # -- writing ---------------------------------------------------------------------------

    def _unwritable(self, exc: OSError) -> CheckpointStoreError:
        return CheckpointStoreError(
            f"the checkpoint store cannot be written ({type(exc).__name__}); nothing was signed",
            code="checkpoint_store_unwritable",
        )

    def _append(self, record: dict[str, object]) -> None:
        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            self._refresh()  # says the store is missing
            raise
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            # Writers of every process take turns (signers already do, under the log's lock;
            # witnesses' cosignatures arrive outside it).
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._refresh()  # refuses a damaged store before anything is written
            end = os.fstat(fd).st_size
            if end > self._read.offset:  # a torn line left by a crash: cut it off
                os.ftruncate(fd, self._read.offset)
            written = os.write(fd, data)
            if written != len(data):
                raise OSError("short write")
            os.fsync(fd)
        except OSError as exc:
            raise self._unwritable(exc) from None
        finally:
            os.close(fd)
        self._refresh()

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
