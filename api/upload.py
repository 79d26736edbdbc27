"""Streaming a multipart upload into the tokeniser without storing it anywhere.

Starlette's form parser spools large files to a temporary file on disk: for a customer file
that would write clear identifiers to disk. Here the raw request body is parsed as it arrives
(python-multipart's push parser) and the file part's bytes go through a bounded in-memory queue
to the tokeniser, which runs in a worker thread and reads it like a file.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, TypeVar

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header

from tiers.errors import InvalidRequest

__all__ = ["QueueReader", "stream_body", "stream_multipart"]

T = TypeVar("T")

_EOF = b""


class QueueReader(io.RawIOBase):
    """A read-only binary stream fed chunk by chunk from another thread."""

    def __init__(self, maxsize: int = 64) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=maxsize)
        self._buffer = b""
        self._done = False
        self.closed_by_reader = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._done:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if item == _EOF:
                self._done = True
            self._buffer = item
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def close(self) -> None:
        self.closed_by_reader.set()
        super().close()

    def feed(self, chunk: bytes) -> bool:
        """Hand a chunk to the reader (blocking while the queue is full); False once the reader
        has stopped (it failed or finished early), so the feeder can stop too."""
        while not self.closed_by_reader.is_set():
            try:
                self._queue.put(chunk, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def end(self, error: BaseException | None = None) -> None:
        self.feed(error if error is not None else _EOF)  # type: ignore[arg-type]


async def stream_multipart(
    content_type: str,
    body: AsyncIterator[bytes],
    on_field: Callable[[str, str], None],
    on_file: Callable[[], QueueReader],
    feed: Callable[[QueueReader, bytes], object],
) -> None:
    """Parse ``body``: text fields go to ``on_field`` (they must come before the file), the one
    file part's bytes to the reader ``on_file`` returns, through ``feed`` (awaited if async)."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("send the file as multipart/form-data", code="bad_content_type")
    state: dict[str, object] = {"headers": {}, "field": None, "value": b"", "reader": None}
    pending: list[bytes] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers = state["headers"]
        assert isinstance(headers, dict)
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        headers = state["headers"]
        assert isinstance(headers, dict)
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition:
            if state["reader"] is not None:
                raise InvalidRequest("send one file per job", code="one_file")
            state["reader"] = on_file()
            state["field"] = None
        else:
            state["field"] = name
            state["value"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["field"] is not None:
            value = state["value"]
            assert isinstance(value, bytes)
            if len(value) + end - start > 4096:
                raise InvalidRequest("a form field is too long", code="field_too_long")
            state["value"] = value + data[start:end]
        else:
            pending.append(bytes(data[start:end]))

    def on_part_end() -> None:
        field = state["field"]
        if isinstance(field, str):
            value = state["value"]
            assert isinstance(value, bytes)
            on_field(field, value.decode("utf-8", "replace"))
        state["headers"] = {}
        state["field"] = None

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    async for chunk in body:
        parser.write(chunk)
        reader = state["reader"]
        if pending and isinstance(reader, QueueReader):
            for piece in pending:
                result = feed(reader, piece)
                if hasattr(result, "__await__"):
                    await result
            pending.clear()
    parser.finalize()
    if state["reader"] is None:
        raise InvalidRequest("the upload has no file part", code="no_file")


async def stream_body(body: AsyncIterator[bytes], work: Callable[[IO[bytes]], T]) -> T:
    """Run ``work`` in a thread on a file-like view of ``body`` as it arrives (never stored)."""
    reader = QueueReader()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work(io.BufferedReader(reader))
        except BaseException as error:  # noqa: BLE001 - handed back to the request below
            box["error"] = error
        finally:
            reader.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        async for chunk in body:
            if chunk and not await anyio.to_thread.run_sync(reader.feed, chunk):
                break
    except BaseException as error:
        await anyio.to_thread.run_sync(reader.end, error)
        await anyio.to_thread.run_sync(thread.join)
        raise
    await anyio.to_thread.run_sync(reader.end)
    await anyio.to_thread.run_sync(thread.join)
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result
