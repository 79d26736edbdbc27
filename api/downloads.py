"""Files sent whole to a client: a job's output or rejects, an inbox delivery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from fastapi.responses import StreamingResponse

from tiers.filestore import file_size

__all__ = ["CsvDownload"]


class CsvDownload(StreamingResponse):
    """A CSV file streamed from a handle the core opened before recording the access (so a
    deletion or purge meanwhile cannot cut it short), closed at the end or when the response
    is dropped; with its size and a file name."""

    media_type = "text/csv"

    def __init__(self, handle: IO[bytes], filename: str, status_code: int = 200) -> None:
        size = file_size(handle)
        super().__init__(
            _chunks(handle),
            status_code,
            headers={
                "content-length": str(size),
                "content-disposition": f'attachment; filename="{filename}"',
            },
        )


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(1 << 16):
            yield chunk
