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
import time
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, Generic, TypeVar

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header

from errors import InvalidRequest, UploadTooSlow
from tiers.deployment import Deployment
from tiers.settings import Settings

__all__ = [
    "HeldBytes",
    "held_for",
    "paced",
    "stream_body",
    "stream_multipart",
]

T = TypeVar("T")

_EOF = b""


async def paced(body: AsyncIterator[bytes], settings: Settings) -> AsyncIterator[bytes]:
    """``body``, refused (:class:`~errors.UploadTooSlow`) when the client sends nothing
    for ``upload_read_timeout_seconds``, or, past ``upload_grace_seconds``, less than
    ``upload_min_bytes_per_second`` on average: an upload holds the work on it (and on SQLite,
    the database's one writer) for as long as it lasts, so a client that trickles it cannot hold
    every other client up for long."""
    start = time.monotonic()
    seen = 0
    chunks = body.__aiter__()
    while True:
        try:
            with anyio.fail_after(settings.upload_read_timeout_seconds):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTooSlow("the upload stalled; send it again") from None
        seen += len(chunk)
        elapsed = time.monotonic() - start
        if elapsed > settings.upload_grace_seconds and seen < (
            settings.upload_min_bytes_per_second * elapsed
        ):
            raise UploadTooSlow("the upload is too slow; send it again")
        yield chunk


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
    held: HeldBytes | None = None,
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
            state["reader"] = StreamedWork(on_file(), held)
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


def held_for(request: Any, deployment: Deployment) -> HeldBytes | None:
    """The budget of uploads held until they end, on SQLite (see :class:`StreamedWork`)."""
    if not deployment.embedded:
        return None
    held: HeldBytes = request.app.state.service.held
    return held


class HeldBytes:
    """How much of the uploads a process may hold in memory until they end (see
    :class:`StreamedWork`)."""

    def __init__(self, limit: int) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if size > self._left:
                return False
            self._left -= size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self._left += size


class StreamedWork(Generic[T]):
    """``work`` running in a thread on a file-like stream that the event loop feeds.

    With ``held`` (SQLite, whose one writer the work holds from its first row to its last),
    the work starts only once the whole upload has arrived, held in memory (never on disk)
    within the process's budget: a client that sends slowly then holds no one else up. An upload
    larger than what is left of the budget is passed on as it arrives, as without ``held``."""

    def __init__(self, work: Callable[[IO[bytes]], T], held: HeldBytes | None = None) -> None:
        self._work = work
        self._held = held
        self._buffer: list[bytes] = []
        self._reserved = 0
        self._reader = QueueReader()
        self._box: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        if held is None:
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, args=(self._work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[IO[bytes]], T]) -> None:
        try:
            self._box["result"] = work(io.BufferedReader(self._reader))
        except BaseException as error:  # noqa: BLE001 - handed back by finish()
            self._box["error"] = error
        finally:
            self._reader.close()

    async def _release(self) -> bool:
        """Start the work and pass it what was held; False once it has stopped reading."""
        self._start()
        held, self._buffer = self._buffer, []
        try:
            for chunk in held:
                if not await anyio.to_thread.run_sync(self._reader.feed, chunk):
                    return False
            return True
        finally:
            if self._held is not None:
                self._held.give(self._reserved)
            self._reserved = 0

    async def feed(self, chunk: bytes) -> bool:
        """Pass a chunk on (or hold it); False once the work has stopped reading."""
        if self._thread is None:
            assert self._held is not None
            if self._held.take(len(chunk)):
                self._buffer.append(chunk)
                self._reserved += len(chunk)
                return True
            if not await self._release():
                return False
        return bool(await anyio.to_thread.run_sync(self._reader.feed, chunk))

    async def abort(self, error: BaseException) -> None:
        """The input broke off: the work sees ``error`` where the stream would go on (it runs,
        held or not, so that it records its own failure)."""
        if self._thread is None:
            self._buffer.clear()
            await self._release()
        assert self._thread is not None
        await anyio.to_thread.run_sync(self._reader.end, error)
        await anyio.to_thread.run_sync(self._thread.join)

    async def finish(self) -> T:
        """End of input: wait for the work and return its result (or raise its error)."""
        if self._thread is None:
            await self._release()
        assert self._thread is not None
        await anyio.to_thread.run_sync(self._reader.end)
        await anyio.to_thread.run_sync(self._thread.join)
        if "error" in self._box:
            raise self._box["error"]
        result: T = self._box["result"]
        return result


async def stream_body(
    body: AsyncIterator[bytes], work: Callable[[IO[bytes]], T], held: HeldBytes | None = None
) -> T:
    """Run ``work`` in a thread on a file-like view of ``body`` as it arrives, or once it has
    arrived (``held``, see :class:`StreamedWork`); never stored."""
    streamed = StreamedWork(work, held)
    try:
        async for chunk in body:
            if chunk and not await streamed.feed(chunk):
                break
    except BaseException as error:
        await streamed.abort(error)
        raise
    return await streamed.finish()
