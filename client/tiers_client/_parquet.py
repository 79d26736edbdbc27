"""Parquet files on the partner's side: the service takes and gives CSV, so a Parquet file is sent
as its CSV export (each cell's text, as pyarrow casts it to a string, an empty cell for a null:
the text the service's own command line reads from a Parquet file), and an output named
``.parquet`` is written back as Parquet, every column as text. Both are read and written by
batches of rows, so memory stays flat. Needs ``pyarrow``: ``pip install 'tiers-client[parquet]'``.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tiers_client._transfer import atomic_target

__all__ = [
    "CsvExport",
    "ParquetError",
    "csv_export",
    "is_parquet",
    "write_parquet",
    "written_as",
]

BATCH_ROWS = 8192
_SUFFIXES = (".parquet", ".pq")


class ParquetError(ValueError):
    """A Parquet file that cannot be read here: pyarrow is missing, or it is not Parquet."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def is_parquet(path: Path | str) -> bool:
    return Path(path).suffix.lower() in _SUFFIXES


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: PLC0415 - an optional extra
        import pyarrow.compute  # noqa: PLC0415
        import pyarrow.parquet  # noqa: PLC0415
    except ImportError:
        raise ParquetError(
            "Parquet files need pyarrow: pip install 'tiers-client[parquet]'", "needs_pyarrow"
        ) from None
    return pyarrow


def _opened(path: Path) -> Any:
    pa = _pyarrow()
    try:
        return pa.parquet.ParquetFile(path)
    except pa.ArrowInvalid:
        raise ParquetError(f"not a Parquet file: {path}", "not_parquet") from None


def _csv_chunks(reader: Any) -> Iterator[bytes]:
    pa = _pyarrow()
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(reader.schema_arrow.names)
    for batch in reader.iter_batches(batch_size=BATCH_ROWS):
        columns = [
            ["" if cell is None else cell for cell in pa.compute.cast(c, pa.string()).to_pylist()]
            for c in batch.columns
        ]
        writer.writerows(zip(*columns, strict=True))
        yield text.getvalue().encode()
        text.seek(0)
        text.truncate()
    yield text.getvalue().encode()


class CsvExport(io.RawIOBase):
    """A Parquet file read as the bytes of its CSV export (comma, CRLF, UTF-8)."""

    def __init__(self, path: Path) -> None:
        # Opened at once, so that a missing pyarrow or a file that is not Parquet is said
        # before the upload starts.
        self._chunks = _csv_chunks(_opened(path))
        self._buffer = b""
        self.name = path.with_suffix(".csv").name

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def write_parquet(csv_path: Path, target: Path) -> None:
    """The CSV file ``csv_path`` (an output downloaded from the service) written to ``target``
    as Parquet, every column as text; ``target`` appears whole or not at all."""
    pa = _pyarrow()
    with open(csv_path, newline="", encoding="utf-8") as handle, atomic_target(target) as out:
        rows = csv.reader(handle)
        header = next(rows)
        schema = pa.schema([(name, pa.string()) for name in header])
        with pa.parquet.ParquetWriter(out, schema) as writer:
            for batch in _batches(rows):
                arrays = [pa.array(column, pa.string()) for column in zip(*batch, strict=True)]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))


@contextlib.contextmanager
def written_as(output: Path) -> Iterator[Path]:
    """Where to download an output that should end as ``output``: ``output`` itself, or, when
    it is named ``.parquet``, a CSV file beside it that is written to ``output`` as Parquet
    once downloaded, then removed."""
    if not is_parquet(output):
        yield output
        return
    _pyarrow()  # before the download, not after
    downloaded = output.with_name(f".{output.name}.csv")
    try:
        yield downloaded
        write_parquet(downloaded, output)
    finally:
        downloaded.unlink(missing_ok=True)


def _batches(rows: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    batch: list[list[str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def csv_export(path: Path) -> IO[bytes]:
    """The Parquet file ``path`` as the bytes of its CSV export, read as they are made."""
    return io.BufferedReader(CsvExport(path), 1 << 16)
