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

Every process signs against the newest checkpoint, so :meth:`CheckpointStore.latest` and
:meth:`CheckpointStore.at` read the file backwards from its end, a block at a time, and verify
only the record they return: their cost does not grow with the store. Only
:meth:`CheckpointStore.records` (verification) reads and verifies every record.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from audit import Checkpoint, CompactRange
from audit.checkpoint import checkpoint_from_note
from audit.note import Note, NoteSignature
from errors import AuditIntegrityError, CheckpointStoreError

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


# How much of the file's end a backward read takes at a time.
BLOCK = 64 * 1024


def _damaged(message: str) -> CheckpointStoreError:
    return CheckpointStoreError(
        f"the checkpoint store is damaged: {message}", code="checkpoint_store_damaged"
    )


class CheckpointStore:
    """The store in ``directory``, read with the log's public key."""

    def __init__(self, directory: Path, public_key: bytes) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME
        self._public_key = public_key
        self._origin: str | None = None
        self._seen = 0  # the longest this process saw the file: it may only grow

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
        """The origin the store was created for (its first record)."""
        if self._origin is None:
            with self._open() as handle:
                first = handle.readline()
            if not first.endswith(b"\n"):
                raise _damaged("it has no origin record")
            self._origin = self._origin_of(_record(first, 0))
        return self._origin

    def records(self) -> list[StoredCheckpoint]:
        """Every checkpoint of the store, in the order they were appended, each verified."""
        with self._open() as handle:
            data = handle.read()
        self._grown_to(len(data))
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line is not read
        lines = complete.splitlines()
        if not lines:
            raise _damaged("it has no origin record")
        origin = self._origin_of(_record(lines[0], 0))
        found: list[StoredCheckpoint] = []
        offset = len(lines[0]) + 1
        for line in lines[1:]:
            record = _record(line, offset)
            if record.get("kind") == "checkpoint":
                found.append(self._checkpoint(record, offset, origin))
            elif record.get("kind") == "cosigned":
                found = self._cosigned(found, record, offset)
            else:
                raise _damaged(f"the record at byte {offset} is of no known kind")
            offset += len(line) + 1
        return found

    def latest(self) -> StoredCheckpoint | None:
        """The newest checkpoint of the log's growth (purge marks are not its growth), with
        its cosignatures."""
        return self._find(lambda record: not record.get("purge"))

    def at(self, size: int) -> StoredCheckpoint | None:
        """The last checkpoint of ``size`` (a purge mark or not), with its cosignatures."""
        return self._find(lambda record: _note_size(record) == size)

    # -- reading -------------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        try:
            return self.path.open("rb")
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

    def _grown_to(self, size: int) -> None:
        if size < self._seen:
            raise _damaged("it is shorter than it was")
        self._seen = size

    def _backward(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` of each complete line, the last first (a torn last line is
        skipped), down to the origin record."""
        with self._open() as handle:
            try:
                position = os.fstat(handle.fileno()).st_size
                self._grown_to(position)
                buffer = b""  # bytes [position, …) not yet yielded, ending at a line's end
                torn = True
                while position > 0:
                    start = max(0, position - BLOCK)
                    handle.seek(start)
                    buffer = handle.read(position - start) + buffer
                    position = start
                    if torn:  # keep what ends with the last newline
                        cut = buffer.rfind(b"\n")
                        if cut < 0:
                            continue
                        buffer, torn = buffer[: cut + 1], False
                    while (before := buffer.rfind(b"\n", 0, len(buffer) - 1)) >= 0:
                        yield position + before + 1, buffer[before + 1 : -1]
                        buffer = buffer[: before + 1]
                if buffer and not torn:
                    yield 0, buffer[:-1]
            except OSError as exc:
                raise CheckpointStoreError(
                    f"the checkpoint store cannot be read ({type(exc).__name__})",
                    code="checkpoint_store_unreadable",
                ) from None

    def _find(self, wanted: Callable[[dict[str, object]], bool]) -> StoredCheckpoint | None:
        """The newest checkpoint record ``wanted`` accepts, verified, with the cosignatures
        recorded after it."""
        cosigned: list[tuple[dict[str, object], int]] = []
        for offset, line in self._backward():
            record = _record(line, offset)
            kind = record.get("kind")
            if kind == "origin":
                return None
            if kind == "cosigned":
                cosigned.append((record, offset))
            elif kind != "checkpoint":
                raise _damaged(f"the record at byte {offset} is of no known kind")
            elif wanted(record):
                found = [self._checkpoint(record, offset, self.origin())]
                for later, at in reversed(cosigned):
                    # a purge mark has none; later checkpoints' are not its
                    if later.get("size") == found[0].size and not found[0].purge:
                        found = self._cosigned(found, later, at)
                return found[0]
        raise _damaged("it has no origin record")

    def _origin_of(self, record: dict[str, object]) -> str:
        if record.get("kind") != "origin" or not isinstance(record.get("origin"), str):
            raise _damaged("it has no origin record")
        return str(record["origin"])

    def _checkpoint(self, record: dict[str, object], offset: int, origin: str) -> StoredCheckpoint:
        try:
            checkpoint = checkpoint_from_note(Note.parse(str(record["note"])), self._public_key)
            raw = record["range"]
            if not isinstance(raw, list):
                raise TypeError("range")
            frontier = tuple(bytes.fromhex(str(node)) for node in raw)
            stored = StoredCheckpoint(checkpoint, frontier, bool(record.get("purge", False)))
            if stored.compact_range().root() != checkpoint.root or checkpoint.origin != origin:
                raise ValueError("range or origin")
        except (ValueError, KeyError, TypeError, AuditIntegrityError):
            raise _damaged(f"the record at byte {offset} does not verify") from None
        return stored

    def _cosigned(
        self, found: list[StoredCheckpoint], record: dict[str, object], offset: int
    ) -> list[StoredCheckpoint]:
        """``found`` with the cosignature lines of ``record`` added to their checkpoint."""
        try:
            size = int(str(record["size"]))
            extra = Note.parse("x\n\n" + str(record["lines"])).signatures
        except (ValueError, KeyError, AuditIntegrityError):
            raise _damaged(f"the record at byte {offset} does not verify") from None
        for index in range(len(found) - 1, -1, -1):
            old = found[index]
            if old.size == size and not old.purge:
                merged = old.cosignatures + tuple(s for s in extra if s not in old.cosignatures)
                found = [*found]
                found[index] = StoredCheckpoint(old.checkpoint, old.frontier, False, merged)
                return found
        raise _damaged(f"the record at byte {offset} cosigns no checkpoint before it")

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
            self._open()  # says the store is missing
            raise
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            # Writers of every process take turns (signers already do, under the log's lock;
            # witnesses' cosignatures arrive outside it).
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.origin()  # refuses a store without its origin before anything is written
            end = os.fstat(fd).st_size
            self._grown_to(end)
            complete = self._complete_length(end)
            if complete < end:  # a torn line left by a crash: cut it off
                os.ftruncate(fd, complete)
            written = os.write(fd, data)
            if written != len(data):
                raise OSError("short write")
            os.fsync(fd)
        except OSError as exc:
            raise self._unwritable(exc) from None
        finally:
            os.close(fd)
        self._seen = complete + len(data)

    def _complete_length(self, end: int) -> int:
        """The length of the file up to its last newline (its complete records)."""
        for offset, line in self._backward():
            return offset + len(line) + 1
        return end

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _record(line: bytes, offset: int) -> dict[str, object]:
    try:
        record = json.loads(line)
    except ValueError:
        raise _damaged(f"the record at byte {offset} is not JSON") from None
    if not isinstance(record, dict):
        raise _damaged(f"the record at byte {offset} is not an object")
    return record


def _note_size(record: dict[str, object]) -> int | None:
    """The tree size a checkpoint record's note states (its second line), unverified: to find
    the record, which is verified once found."""
    try:
        return int(str(record["note"]).split("\n", 2)[1])
    except (KeyError, IndexError, ValueError):
        return None
