"""Parquet files in and out (pyarrow), read and written by batches of rows, so that memory stays
as flat as for a CSV file whatever the file's size.

A Parquet file is read as the records of its CSV export would be: the header is its column
names, each cell its text (pyarrow's cast to string: ``2026-11-02``, ``12.50``, ``12.5``; an
empty cell for a null), and the record of the file's n-th row is numbered n + 1, the line it
would have under its header. So a Parquet file gives the pseudonyms and the rejects its CSV
export gives. The tokenised output is Parquet too, every column as text (a kept column's type
is not carried over: its text is).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from errors import InvalidFile, InvalidRequest, NotFound

__all__ = ["ParquetRows", "file_format", "records", "text_rows"]

FORMATS = ("csv", "parquet")
BATCH_ROWS = 8192
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet"}


def file_format(path: Path | None, given: str | None) -> str:
    """``given`` if named, else the one the file's extension says (``.parquet``, ``.pq``),
    else CSV."""
    if given is not None:
        if given not in FORMATS:
            raise InvalidRequest("the format must be csv or parquet", code="unknown_format")
        return given
    return _SUFFIXES.get(path.suffix.lower(), "csv") if path is not None else "csv"


def records(source: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The file's column names, and its rows as text, numbered as the lines of its CSV export.
    Raises :class:`InvalidFile` (``not_parquet``) for a file that is not Parquet."""
    try:
        reader = pq.ParquetFile(source)
    except FileNotFoundError:
        raise NotFound(f"no such file: {source}", code="no_such_file") from None
    except (pa.ArrowInvalid, OSError):
        raise InvalidFile("the file is not a Parquet file", code="not_parquet") from None
    header = list(reader.schema_arrow.names)
    return header, _rows(reader)


def _rows(reader: pq.ParquetFile) -> Iterator[tuple[int, list[str]]]:
    line = 1
    try:
        for batch in reader.iter_batches(batch_size=BATCH_ROWS):
            for row in text_rows(batch):
                line += 1
                yield line, list(row)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        raise InvalidFile(
            f"line {line + 1}: the Parquet file cannot be read further", code="bad_parquet"
        ) from None


def text_rows(batch: pa.RecordBatch) -> Iterator[tuple[str, ...]]:
    """The rows of ``batch`` as text: each cell cast to a string, a null made empty."""
    columns = [
        ["" if cell is None else cell for cell in pc.cast(column, pa.string()).to_pylist()]
        for column in batch.columns
    ]
    return zip(*columns, strict=True)


class ParquetRows:
    """Rows of text written to ``handle`` as a Parquet file of string columns, by batches."""

    def __init__(self, handle: IO[bytes], header: Sequence[str]) -> None:
        self._schema = pa.schema([(name, pa.string()) for name in header])
        self._writer = pq.ParquetWriter(handle, self._schema)
        self._pending: list[list[str]] = []

    def writerow(self, row: Sequence[str]) -> None:
        self._pending.append(list(row))
        if len(self._pending) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            columns = [pa.array(column, pa.string()) for column in zip(*self._pending, strict=True)]
            self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))
            self._pending = []

    def close(self) -> None:
        """Write what is pending and the file's footer (a file without it is not Parquet)."""
        self._flush()
        self._writer.close()
