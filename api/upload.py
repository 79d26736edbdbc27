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
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header

from errors import InvalidRequest, UploadTooSlow
from tiers.deployment import Deployment
from tiers.settings import Settings

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

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


@dataclass(slots=True)
class _FormParts(Generic[T]):
    """What the multipart parser's callbacks build: each part's headers, the text fields (given
    to ``on_field``), and the file part, whose bytes go to the work ``on_file`` gives."""

    on_field: Callable[[str, str], None]
    on_file: Callable[[], Callable[[IO[bytes]], T]]
    held: HeldBytes | None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: str | None = None  # of the text field being read
    value: bytes = b""
    work: StreamedWork[T] | None = None
    pending: list[bytes] = field(default_factory=list)  # of the file, not yet fed to the work
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field.extend(data[start:end])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value.extend(data[start:end])

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        if b"filename" in disposition:
            if self.work is not None:
                raise InvalidRequest("send one file per job", code="one_file")
            self.work = StreamedWork(self.on_file(), self.held)
            self.field_name = None
        else:
            self.field_name = disposition.get(b"name", b"").decode("utf-8", "replace")
            self.value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.field_name is None:
            self.pending.append(bytes(data[start:end]))
        elif len(self.value) + end - start > _MAX_FIELD_BYTES:
            raise InvalidRequest("a form field is too long", code="field_too_long")
        else:
            self.value += data[start:end]

    def on_part_end(self) -> None:
        if self.field_name is not None:
            self.on_field(self.field_name, self.value.decode("utf-8", "replace"))
        self.headers = {}
        self.field_name = None

    async def feed(self) -> None:
        """Hand the file's bytes parsed so far to its work (once the file part has begun)."""
        if self.pending and self.work is not None:
            for piece in self.pending:
                await self.work.feed(piece)
            self.pending.clear()


_MAX_FIELD_BYTES = 4096


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
    parts = _FormParts(on_field, on_file, held)
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
            await parts.feed()
        parser.finalize()
    except BaseException as error:
        # The upload broke off or was malformed: the work fails, nothing is delivered.
        if parts.work is not None:
            await parts.work.abort(error)
        raise
    if parts.work is None:
        raise InvalidRequest("the upload has no file part", code="no_file")
    result: T = await parts.work.finish()
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
