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
from typing import IO, Any, Generic, TypeVar

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header

from tiers.errors import InvalidRequest

__all__ = ["QueueReader", "StreamedWork", "stream_body", "stream_multipart"]

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
    on_file: Callable[[], Callable[[IO[bytes]], T]],
) -> T:
    """Parse ``body``: text fields go to ``on_field`` (they must come before the file); at the
    file part, ``on_file`` gives the work to run on it, which then reads the part's bytes as
    they arrive (:class:`StreamedWork`). Returns the work's result."""
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
            state["reader"] = StreamedWork(on_file())
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
    try:
        async for chunk in body:
            parser.write(chunk)
            streamed = state["reader"]
            if pending and isinstance(streamed, StreamedWork):
                for piece in pending:
                    await streamed.feed(piece)
                pending.clear()
        parser.finalize()
    except BaseException as error:
        # The upload broke off or was malformed: the work fails, nothing is delivered.
        streamed = state["reader"]
        if isinstance(streamed, StreamedWork):
            await streamed.abort(error)
        raise
    streamed = state["reader"]
    if not isinstance(streamed, StreamedWork):
        raise InvalidRequest("the upload has no file part", code="no_file")
    result: T = await streamed.finish()
    return result


class StreamedWork(Generic[T]):
    """``work`` running in a thread on a file-like stream that the event loop feeds."""

    def __init__(self, work: Callable[[IO[bytes]], T]) -> None:
        self._reader = QueueReader()
        self._box: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[IO[bytes]], T]) -> None:
        try:
            self._box["result"] = work(io.BufferedReader(self._reader))
        except BaseException as error:  # noqa: BLE001 - handed back by finish()
            self._box["error"] = error
        finally:
            self._reader.close()

    async def feed(self, chunk: bytes) -> bool:
        """Pass a chunk on; False once the work has stopped reading."""
        return bool(await anyio.to_thread.run_sync(self._reader.feed, chunk))

    async def abort(self, error: BaseException) -> None:
        """The input broke off: the work sees ``error`` where the stream would go on."""
        await anyio.to_thread.run_sync(self._reader.end, error)
        await anyio.to_thread.run_sync(self._thread.join)

    async def finish(self) -> T:
        """End of input: wait for the work and return its result (or raise its error)."""
        await anyio.to_thread.run_sync(self._reader.end)
        await anyio.to_thread.run_sync(self._thread.join)
        if "error" in self._box:
            raise self._box["error"]
        result: T = self._box["result"]
        return result


async def stream_body(body: AsyncIterator[bytes], work: Callable[[IO[bytes]], T]) -> T:
    """Run ``work`` in a thread on a file-like view of ``body`` as it arrives (never stored)."""
    streamed = StreamedWork(work)
    try:
        async for chunk in body:
            if chunk and not await streamed.feed(chunk):
                break
    except BaseException as error:
        await streamed.abort(error)
        raise
    return await streamed.finish()
