"""Reading and writing CSV files safely: sources opened as bytes or text, headers and records
read with their line numbers, and outputs that appear only when complete.

Shared by file tokenisation (:mod:`tiers.files`) and exchanges (:mod:`tiers.exchanges`).
A source's undecodable bytes are kept (``surrogateescape``) so that a row, not the file, is
rejected for them; parser errors name the line, never the data.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from errors import InvalidFile, NotFound

__all__ = [
    "FIELD_SIZE_LIMIT",
    "atomic_binary_output",
    "atomic_output",
    "csv_records",
    "open_raw",
    "open_source",
    "read_header",
    "text_of",
    "undecodable",
]

FIELD_SIZE_LIMIT = 1 << 20


@contextmanager
def atomic_output(target: Path) -> Iterator[IO[str]]:
    """A text file that appears at ``target`` only if the block succeeds (temp file + rename).

    The temporary file is created beside the target with mode 0600 and removed on failure.
    """
    with atomic_binary_output(target) as raw:
        handle = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield handle
        handle.flush()
        handle.detach()


@contextmanager
def atomic_binary_output(target: Path) -> Iterator[IO[bytes]]:
    """:func:`atomic_output` for bytes."""
    target = target.resolve()
    if not target.parent.is_dir():
        raise NotFound(f"no such folder: {target.parent}", code="no_such_folder")
    descriptor, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not every platform opens directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_source(source: Path | IO[bytes]) -> tuple[IO[bytes], IO[str], int]:
    """A text view of the source. A stream (an upload) is read as it comes: size 0 = unknown."""
    raw, size = open_raw(source)
    return raw, text_of(raw, "utf-8-sig"), size


def text_of(raw: IO[bytes], encoding: str) -> IO[str]:
    # surrogateescape keeps undecodable bytes in the row so that the row, not the file, is
    # rejected (code bad_encoding); utf-8-sig drops a leading byte-order mark.
    return io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")


def open_raw(source: Path | IO[bytes]) -> tuple[IO[bytes], int]:
    """The source as bytes, and its size (0: a stream read as it comes, size unknown)."""
    raw: IO[bytes]
    if isinstance(source, Path):
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed by the caller's ExitStack
        except FileNotFoundError:
            raise NotFound(f"no such file: {source}", code="no_such_file") from None
        except OSError as exc:
            raise InvalidFile(f"cannot read {source}: {exc.strerror}", code="unreadable") from None
        size = os.fstat(raw.fileno()).st_size
    else:
        raw, size = source, 0
    return raw, size


def undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_header(reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidFile("the file is empty (no header line)", code="empty_file") from None
    except (csv.Error, UnicodeError):
        raise InvalidFile(
            "the file is not a CSV file (unreadable header)", code="not_csv"
        ) from None
    if any(undecodable(name) or "\x00" in name for name in header):
        raise InvalidFile("the file is not a UTF-8 CSV file (bad header)", code="not_csv")
    return header


def csv_records(reader: Any, lines_before: int = 0) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, fields)`` of each record after the header; blank lines skipped.
    ``lines_before``: the physical lines of the file before the reader's first line."""
    last_line = reader.line_num + lines_before
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # its messages name the problem, never the data
            raise InvalidFile(
                f"line {last_line + 1}: not valid CSV ({exc})", code="bad_csv"
            ) from None
        line = last_line + 1
        last_line = reader.line_num + lines_before
        if row:
            yield line, row
