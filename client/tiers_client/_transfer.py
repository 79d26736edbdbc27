"""Files to and from the service: uploads read as they are sent, downloads written beside their
target and renamed into place only when complete, both reporting progress."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

# done bytes, and the total when known
Progress = Callable[[int, "int | None"], None]
CHUNK = 1 << 16


class Counted:
    """A file opened for reading that reports each read to ``progress`` (an upload's body). A
    Parquet file is read as its CSV export (:mod:`tiers_client._parquet`), whose size is not
    known beforehand."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        from tiers_client._parquet import csv_export, is_parquet  # noqa: PLC0415 - a cycle

        self._file: IO[bytes]
        if is_parquet(path):
            self._file, self._total = csv_export(path), None
            self.name = path.with_suffix(".csv").name
        else:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
            self._total = os.fstat(self._file.fileno()).st_size
            self.name = path.name
        self._done = 0
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._done += len(data)
        if self._progress is not None:
            self._progress(self._done, self._total)
        return data

    def chunks(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What a file sent in parts is cut into by default (the service takes up to 64 MiB a part).
PART_BYTES = 16 * 1024 * 1024


def parts_of(path: Path, part_bytes: int, offset: int = 0) -> Iterator[bytes]:
    """The file's bytes (a Parquet file's CSV export) from ``offset`` on, ``part_bytes`` at a
    time (a job resumed starts where the service says it has received up to)."""
    if part_bytes < 1:
        raise ValueError("part_bytes must be positive")
    with Counted(path, None) as body:
        while offset > 0 and (skipped := body.read(min(offset, CHUNK))):
            offset -= len(skipped)
        while data := body.read(part_bytes):
            yield data


@contextlib.contextmanager
def atomic_target(target: Path) -> Iterator[IO[bytes]]:
    """A file that appears at ``target`` only if the block succeeds; nothing is left otherwise."""
    target = Path(target).absolute()
    if not target.parent.is_dir():
        raise FileNotFoundError(f"no such folder: {target.parent}")
    descriptor, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def total_of(headers: Any) -> int | None:
    length = headers.get("content-length")
    return int(length) if length and length.isdigit() else None
