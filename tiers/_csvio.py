"""Reading and writing CSV files safely: sources opened as bytes or text, headers and records
read with their line numbers, and outputs that appear only when complete.

Shared by file tokenisation (:mod:`tiers.files`) and exchanges (:mod:`tiers.exchanges`).
A source's undecodable bytes are kept (``surrogateescape``) so that a row, not the file, is
rejected for them; parser errors name the line, never the data.

Files as they come (:func:`prepared`): UTF-8 with or without a byte-order mark by default, or
cp1252 and latin-1 on request, transcoded to UTF-8 as they are read, so that everything after
reads UTF-8; a default UTF-8 file whose first block does not decode fails at once, naming
the likely fix. The delimiter, unless given, is the one of ``,`` ``;`` tab ``|`` that the
header line uses most.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from errors import InvalidFile, InvalidRequest, NotFound

__all__ = [
    "CHECKED_BYTES",
    "FIELD_SIZE_LIMIT",
    "Chained",
    "atomic_binary_output",
    "atomic_output",
    "checked_delimiter",
    "checked_encoding",
    "csv_records",
    "delimiter_hint",
    "detect_delimiter",
    "open_raw",
    "open_source",
    "prepared",
    "read_header",
    "text_of",
    "undecodable",
]

FIELD_SIZE_LIMIT = 1 << 20
# The encodings a source may be in, by the names the options take.
ENCODINGS = ("utf-8", "cp1252", "latin-1")
# The delimiters found without being named, in the order that breaks a tie.
DELIMITERS = (",", ";", "\t", "|")
# How much of a default UTF-8 source must decode before it is read: enough for the header and
# the first rows; a stray bad byte further on rejects its row (bad_encoding), not the file.
CHECKED_BYTES = 64 * 1024
_BOM = codecs.BOM_UTF8
# Control bytes that no text file holds (a tab, a line feed, a carriage return are text).
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


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


def open_source(
    source: Path | IO[bytes], *, encoding: str = "utf-8", delimiter: str | None = None
) -> tuple[IO[bytes], IO[str], int, str]:
    """A text view of the source (see :func:`prepared`) and its delimiter. A stream (an upload)
    is read as it comes: size 0 = unknown."""
    raw, size = open_raw(source)
    try:
        readable, found = prepared(raw, encoding=encoding, delimiter=delimiter)
    except BaseException:
        raw.close()
        raise
    return raw, text_of(readable, "utf-8"), size, found


def prepared(
    raw: IO[bytes], *, encoding: str = "utf-8", delimiter: str | None = None
) -> tuple[IO[bytes], str]:
    """``raw`` as UTF-8 bytes with no byte-order mark, and its delimiter: ``delimiter`` if
    given, else the one its header line uses most (:func:`detect_delimiter`).

    Raises :class:`InvalidRequest` for an encoding other than :data:`ENCODINGS`, and
    :class:`InvalidFile` (``not_utf8``) when a UTF-8 source does not decode in its first
    :data:`CHECKED_BYTES`, before anything is read further."""
    checked_encoding(encoding)
    head = _read_up_to(raw, CHECKED_BYTES)
    if encoding == "utf-8":
        head = head.removeprefix(_BOM)
        try:
            # not final: a character cut at the end of the block is completed by the rest
            text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            if _CONTROL.search(head):  # no text in any encoding: an image, an archive…
                raise InvalidFile("the file is not a CSV file (binary)", code="not_csv") from None
            raise InvalidFile(
                "the file is not UTF-8: if it was saved by Excel or another Windows program, "
                "send it again with the encoding cp1252 (--encoding cp1252; latin-1 also "
                "works)",
                code="not_utf8",
            ) from None
        readable: IO[bytes] = io.BufferedReader(Chained(head, raw))
    else:
        text = head.decode(encoding, "surrogateescape")
        readable = io.BufferedReader(_Transcoded(io.BufferedReader(Chained(head, raw)), encoding))
    return readable, delimiter or detect_delimiter(text.partition("\n")[0])


def checked_encoding(encoding: str) -> str:
    """``encoding`` if it is one of :data:`ENCODINGS`; else :class:`InvalidRequest`."""
    if encoding not in ENCODINGS:
        raise InvalidRequest(
            f"the encoding must be one of {', '.join(ENCODINGS)}", code="unknown_encoding"
        )
    return encoding


def checked_delimiter(delimiter: str | None) -> str | None:
    """``delimiter`` as one character (``tab`` and ``\\t`` name the tab), or None to find it
    from the header; refuses one the CSV format cannot have."""
    if delimiter is None:
        return None
    delimiter = _NAMED_DELIMITERS.get(delimiter.lower(), delimiter)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise InvalidRequest(
            "the delimiter must be one character other than a quote or newline",
            code="bad_delimiter",
        )
    return delimiter


_NAMED_DELIMITERS = {"tab": "\t", "\\t": "\t"}


def delimiter_hint(header: list[str]) -> str:
    """A hint for an error about a header read with the wrong delimiter: one column that
    holds another candidate."""
    if len(header) == 1:
        for candidate in DELIMITERS:
            if candidate in header[0]:
                shown = "tab" if candidate == "\t" else repr(candidate)
                return f" (the header reads as one column holding {shown}: is the delimiter right?)"
    return ""


def detect_delimiter(header_line: str) -> str:
    """The candidate (:data:`DELIMITERS`) the header line holds most often outside quotes;
    ``,`` when it holds none (a file of one column)."""
    outside = header_line.split('"')[::2]  # the stretches outside quoted names
    counts = {d: sum(part.count(d) for part in outside) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # the first of the highest, on a tie
    return best if counts[best] else ","


def _read_up_to(raw: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes: less only at the end of the stream (an upload comes in pieces)."""
    pieces: list[bytes] = []
    wanted = size
    while wanted > 0 and (piece := raw.read(wanted)):
        pieces.append(piece)
        wanted -= len(piece)
    return b"".join(pieces)


class Chained(io.RawIOBase):
    """``head`` then ``tail``, as one readable raw stream (the caller owns ``tail``)."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Transcoded(io.RawIOBase):
    """A source in ``encoding`` read as UTF-8 bytes. A byte the encoding does not define
    (five in cp1252) stays as it was, not valid UTF-8, so that its row is rejected
    (``bad_encoding``) as a UTF-8 file's would be."""

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        super().__init__()
        self._text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            text = self._text.read(max(len(buffer) // 2, 1))
            if not text:
                return 0
            self._left = text.encode("utf-8", "surrogateescape")
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


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
