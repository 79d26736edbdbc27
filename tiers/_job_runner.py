"""A file job in a process of its own: the API's file jobs on the parallel path, and uploads in
parts that outlive a dropped connection.

The service's worker threads may not fork (:mod:`tiers._fastpath`), so a job that should use the
block workers runs in a runner: a fresh interpreter (``python -m tiers._job_runner JOB_ID``)
started by the worker that opens the job, with the service's settings in its environment. It
opens the deployment itself, so that keys are unwrapped in it and never handed to it, and runs
:func:`tiers.files.tokenise_file` in its main thread, which forks the block workers. It has no
other thread: it serves its socket whenever the tokeniser asks for more input.

The upload reaches it through a Unix socket of its own (:func:`socket_path`: mode 0600 in a
folder only the service's user may enter), so that any worker process of the host can pass it a
part. Each message is one connection; everything on it is a frame (a 4-byte big-endian length,
then that many bytes): a JSON header, data frames when it carries data, and an empty frame after
them; the runner answers with one JSON frame, ``{"ok": …}`` or ``{"error": {"code",
"message"}}``.

- ``{"op": "part", "number": n, "sha256": hex}`` and data: part ``n`` (from 1, in order), held in
  memory until it is whole and its digest checked, then tokenised. A part sent again (its
  acknowledgement lost with the connection) is recognised by its number and digest and not
  applied twice; another content under a number already applied is refused. The answer comes
  once the part is nearly all tokenised, so that a client sending part after part never runs
  ahead of the tokeniser by more than a part.
- ``{"op": "stream"}`` and data: a whole file sent in one upload, tokenised as it arrives and
  answered, like ``complete``, when the job has ended.
- ``{"op": "complete", "parts": n}``: the last part was ``n``; the job ends and is answered with
  its counts (or its error) once its outputs are in place.
- ``{"op": "progress"}``: bytes and parts received, rows read and rejected so far.

On PostgreSQL, parts that reached another node wait for the runner in the database, encrypted
under the job's own key (:mod:`tiers.relay`): while it waits for input, the runner looks there
for the next part, and for a completion asked through another node, every ``POLL_SECONDS``.

Nothing received is written to disk in the clear: parts are in memory until tokenised (those
relayed by another node were in the database only encrypted). On SQLite, whose one
writer the tokeniser holds from its first row to its last, the upload is held in memory (up to
``TIERS_UPLOAD_HOLD_BYTES``) until it is complete, so that a client that sends slowly, or drops
its connection and comes back, holds no other client up meanwhile; a larger upload is tokenised
as it arrives. A job that receives nothing for ``TIERS_UPLOAD_RESUME_SECONDS`` fails
(``upload_abandoned``); one whose worker stops it (SIGTERM) or dies fails as ``interrupted``;
either way its partial outputs are removed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from errors import BodyTooLarge, InvalidRequest, StateConflict, TiersError, UploadTooSlow
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.files import FileReport, parse_column_spec, tokenise_file
from tiers.jobs import Heartbeat, fail_file_job, finish_file_job
from tiers.relay import POLL_SECONDS, RunnerRelay
from tiers.settings import Settings

__all__ = [
    "JobSpec",
    "recv_frame",
    "send_frame",
    "socket_path",
]

# What the tokeniser is left to read when a part is acknowledged (see the module docstring).
LOW_WATER = 4 * 1024 * 1024
# How long a runner whose stream was cut watches for its worker's death (see _unless_orphaned).
ORPHAN_SECONDS = 1.0
# How long one message may take to arrive once its connection is accepted.
MESSAGE_SECONDS = 60.0
_HEADER_BYTES = 64 * 1024


def socket_path(job_id: str) -> Path:
    """The socket of job ``job_id``'s runner (the job's folder may be too deep for a Unix
    socket's path, which is limited to about 100 bytes)."""
    return Path(tempfile.gettempdir()) / f"tiers-{os.getuid()}" / f"{job_id}.sock"


def send_frame(connection: socket.socket, data: bytes) -> None:
    connection.sendall(len(data).to_bytes(4, "big") + data)


def _exactly(connection: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(connection: socket.socket, limit: int) -> bytes | None:
    """The next frame, or None when the connection ended first; a frame over ``limit`` bytes
    ends the connection (:class:`ConnectionError`)."""
    head = _exactly(connection, 4)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > limit:
        raise ConnectionError("a frame over its limit")
    return _exactly(connection, size) if size else b""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the runner is told on its standard input, as one line of JSON."""

    job_id: str
    domain: str
    columns: list[str]
    keep: list[str]
    delimiter: str | None
    encoding: str
    register: bool
    access: dict[str, Any]  # tiers.auditing.Access's fields, its time as ISO 8601

    def to_json(self) -> str:
        return json.dumps({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_json(cls, line: str) -> JobSpec:
        return cls(**json.loads(line))


def _answer(connection: socket.socket, body: dict[str, Any]) -> None:
    with suppress(OSError):  # a client gone before its answer
        send_frame(connection, json.dumps(body).encode())
    connection.close()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _Elsewhere:
    """Who waits for the end of a job completed through another node: no connection here
    (that node reads the job's state)."""

    def sendall(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


_ELSEWHERE: Any = _Elsewhere()


class _Stopped(Exception):
    """The service stops its runners (SIGTERM), or the process that started this one died: the
    job fails as interrupted."""


class Upload(io.RawIOBase):
    """The job's input as the tokeniser reads it, fed by the messages of the socket (see the
    module docstring); also what is known of the job's progress."""

    def __init__(
        self, server: socket.socket, *, part_limit: int, idle_seconds: float,
        relay: RunnerRelay | None = None,
    ) -> None:  # fmt: skip
        self._server = server
        # Parts that reached other nodes (PostgreSQL, tiers.relay), and those applied from
        # there whose application is not yet told.
        self._relay = relay
        self._relayed: list[tuple[int, str]] = []
        self._part_limit = part_limit
        self._idle = idle_seconds
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._digests: list[str] = []  # of the parts applied, in order
        self._pending: list[tuple[socket.socket, dict[str, Any]]] = []  # acknowledgements due
        self._stream: socket.socket | None = None
        self.ended: socket.socket | None = None  # the connection the job's end answers
        self.received = 0
        self._last_input = time.monotonic()
        self._parent = os.getppid()  # the worker that started the job
        self.report: Any = None  # tiers.files.FileReport, once the tokeniser runs
        self.beat: Any = None  # called while waiting (the job's heartbeat)

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._chunks and self.ended is None:
            self.serve(wait=True)
        self.serve(wait=False)
        size = 0
        view = memoryview(target)
        while self._chunks and size < len(view):
            chunk = self._chunks.popleft()
            take = min(len(chunk), len(view) - size)
            view[size : size + take] = chunk[:take]
            if take < len(chunk):
                self._chunks.appendleft(chunk[take:])
            size += take
        self._buffered -= size
        if self._buffered <= LOW_WATER:
            self.acknowledge()
        return size

    def acknowledge(self, end: dict[str, Any] | None = None) -> None:
        """Answer the parts waiting for it; with ``end`` (the job has ended), answer them and
        the job's end with it (a part that failed the job gets its error)."""
        for connection, body in self._pending:
            _answer(connection, body if end is None or "ok" in end else end)
        self._pending.clear()
        if self._relay is not None and (end is None or "ok" in end):
            for number, digest in self._relayed:
                self._relay.applied(number, digest)
            self._relayed.clear()
        if end is not None:
            for waiting in (self.ended, self._stream):
                if waiting is not None:
                    _answer(waiting, end)

    def hold(self, limit: int) -> None:
        """Receive, acknowledging at once, until the upload is complete or ``limit`` bytes are
        held (see the module docstring)."""
        while self.ended is None and self._buffered < limit:
            self.serve(wait=True)
            self.acknowledge()

    def serve(self, *, wait: bool) -> None:
        """Answer what is waiting on the socket; with ``wait``, until input arrives, or fail the
        job once no input came for the idle time (questions of progress are not input). A
        runner whose worker died (killed with the service) ends its job as interrupted."""
        while True:
            if os.getppid() != self._parent:
                raise _Stopped
            if self._from_relay() and (not wait or self._chunks or self.ended is not None):
                return
            readable = [self._server] + ([self._stream] if self._stream is not None else [])
            left = self._idle - (time.monotonic() - self._last_input)
            most = 5.0 if self._relay is None else POLL_SECONDS
            ready, _, _ = select.select(readable, [], [], max(0.0, min(most, left)) if wait else 0)
            if not ready:
                if not wait:
                    return
                if self.beat is not None:
                    self.beat()
                if time.monotonic() - self._last_input >= self._idle:
                    raise UploadTooSlow(
                        "the upload received nothing for TIERS_UPLOAD_RESUME_SECONDS",
                        code="upload_abandoned",
                    )
                continue
            if self._stream is not None and self._stream in ready:
                self._streamed()
            if self._server in ready:
                self._accept()
            if not wait or self._chunks or self.ended is not None:
                return

    def _accept(self) -> None:
        connection, _ = self._server.accept()
        connection.settimeout(MESSAGE_SECONDS)
        try:
            header = recv_frame(connection, _HEADER_BYTES)
            message = json.loads(header) if header else None
            if not isinstance(message, dict):
                raise ConnectionError("no header")
            reply = self._message(connection, message)
        except TiersError as refused:  # before ValueError, which some of them are
            reply = _error(refused.code, refused.message)
        except (OSError, ValueError):  # cut off, or not of this protocol: nothing applied
            connection.close()
            return
        if reply is not None:
            _answer(connection, reply)

    def _message(self, connection: socket.socket, message: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to ``message``, or None when it is given later."""
        op = message.get("op")
        if op == "progress":
            return {"ok": self.progress()}
        if self.ended is not None or self._stream is not None:
            raise StateConflict("the job has all its input already", code="job_complete")
        if op == "part":
            return self._part(connection, message)
        if op == "complete":
            expected = len(self._digests)
            if message.get("parts") != expected:
                raise StateConflict(
                    f"the job has received parts 1 to {expected}", code="part_missing"
                )
            self.ended = connection
            return None
        if op == "stream":
            self._stream = connection
            return None
        raise InvalidRequest("an unknown message", code="invalid_request")

    def _part(self, connection: socket.socket, message: dict[str, Any]) -> dict[str, Any] | None:
        number, digest = message.get("number"), message.get("sha256")
        chunks, size = [], 0
        while (chunk := recv_frame(connection, self._part_limit)) != b"":
            if chunk is None:
                raise ConnectionError("the part was cut off")
            size += len(chunk)
            if size > self._part_limit:
                raise BodyTooLarge(
                    "the part is over TIERS_UPLOAD_PART_MAX_BYTES", code="part_too_large"
                )
            chunks.append(chunk)
        if not isinstance(number, int) or number < 1:
            raise InvalidRequest("a part number counts from 1", code="invalid_request")
        found = hashlib.sha256(b"".join(chunks)).hexdigest()
        if digest is not None and digest != found:
            raise InvalidRequest("the part does not match its SHA-256 digest", code="part_digest")
        if number <= len(self._digests):
            if self._digests[number - 1] != found:
                raise StateConflict(
                    f"part {number} was received with another content", code="part_conflict"
                )
            return {"ok": {"part": number, "applied": False, **self.progress()}}
        if number != len(self._digests) + 1:
            raise StateConflict(
                f"the next part is {len(self._digests) + 1}", code="part_out_of_order"
            )
        self._apply(found, chunks, size)
        if self._relay is not None:  # so that a node it is sent to again knows it
            self._relay.applied(number, found)
        self._pending.append((connection, {"ok": {"part": number, "applied": True}}))
        return None

    def _apply(self, digest: str, chunks: list[bytes], size: int) -> None:
        self._digests.append(digest)
        self._last_input = time.monotonic()
        self._chunks.extend(c for c in chunks if c)
        self._buffered += size
        self.received += size

    def _from_relay(self) -> bool:
        """Take the next part if another node left it, or the end if another node was asked
        for it (at most every POLL_SECONDS); whether something came."""
        relay = self._relay
        if relay is None or self.ended is not None or self._stream is not None or not relay.due():
            return False
        number = len(self._digests) + 1
        found = relay.fetch(number)
        if found is not None:
            data, digest = found
            self._apply(digest, [data], len(data))
            self._relayed.append((number, digest))
            return True
        last = relay.completion()
        if last is None:
            return False
        if last != len(self._digests):  # a part came after the other node checked
            raise StateConflict(
                f"the job has received parts 1 to {len(self._digests)}", code="part_missing"
            )
        self.ended = _ELSEWHERE
        return True

    def _streamed(self) -> None:
        assert self._stream is not None
        chunk = recv_frame(self._stream, self._part_limit)
        if chunk is None:
            self._unless_orphaned()
            raise InvalidRequest("the upload broke off before its end", code="upload_cut")
        if chunk == b"":
            self.ended, self._stream = self._stream, None
            return
        self._chunks.append(chunk)
        self._last_input = time.monotonic()
        self._buffered += len(chunk)
        self.received += len(chunk)

    def _unless_orphaned(self) -> None:
        """Raise :class:`_Stopped` if the worker that started the job has died. A stream cut
        off by the worker's death is seen before the runner is given another parent, so the
        parent is watched a moment before the cut is taken for the client's."""
        deadline = time.monotonic() + ORPHAN_SECONDS
        while time.monotonic() < deadline:
            if os.getppid() != self._parent:
                raise _Stopped
            time.sleep(0.02)

    def progress(self) -> dict[str, int]:
        report = self.report
        return {
            "bytes_received": self.received,
            "parts": len(self._digests),
            "rows_in": report.rows_in if report is not None else 0,
            "rows_rejected": report.rows_rejected if report is not None else 0,
        }


@contextmanager
def listening(job_id: str) -> Iterator[socket.socket]:
    """The runner's socket, removed when the job ends."""
    path = socket_path(job_id)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    if path.parent.stat().st_uid != os.getuid() or path.parent.stat().st_mode & 0o077:
        raise PermissionError(errno.EACCES, "the runners' folder is not the service's own only")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(16)
    try:
        yield server
    finally:
        server.close()
        path.unlink(missing_ok=True)


def run(spec: JobSpec) -> int:
    """Run job ``spec`` (the process's work, see the module docstring); tells the service on
    standard output, as one line of JSON, that it listens, or why it cannot start."""
    try:
        deployment = Deployment.open(Settings())
    except TiersError as error:
        print(json.dumps(_error(error.code, error.message)), flush=True)
        return 1
    deployment.checkpoint_due = lambda: None  # the service's checkpoint thread signs
    with ExitStack() as stack:
        stack.callback(deployment.close)
        try:
            server = stack.enter_context(listening(spec.job_id))
        except OSError as error:
            message = f"the job's process cannot listen: {error.strerror or error}"
            print(json.dumps(_error("job_process", message)), flush=True)
            return 1
        settings = deployment.settings
        try:
            relay = RunnerRelay.register(deployment, spec.job_id)
        except TiersError as error:
            print(json.dumps(_error(error.code, error.message)), flush=True)
            return 1
        upload = Upload(
            server,
            part_limit=settings.upload_part_max_bytes,
            idle_seconds=settings.upload_resume_seconds,
            relay=relay,
        )
        print(json.dumps({"ok": "ready"}), flush=True)
        os.dup2(2, 1)  # the service reads one line: anything printed later goes to stderr
        return _tokenised(deployment, spec, upload)
    return 1  # not reached: the block returns or raises


def _tokenised(deployment: Deployment, spec: JobSpec, upload: Upload) -> int:
    """The job run and ended (outputs in place and ``done``, or ``failed`` and removed); its
    end answered to whoever completed it."""
    access = Access(**{**spec.access, "now": datetime.fromisoformat(spec.access["now"])})
    directory = deployment.settings.home / "jobs" / spec.job_id
    report = upload.report = FileReport()
    beats = Heartbeat(deployment, spec.job_id)
    upload.beat = lambda: beats(report.rows_in, 0)
    try:
        if deployment.embedded:
            upload.hold(deployment.settings.upload_hold_bytes)
        tokenise_file(
            deployment, access=access, source=io.BufferedReader(upload, 1 << 20),
            output=directory / "output.csv", rejects=directory / "rejects.csv",
            domain=spec.domain, columns=[parse_column_spec(text) for text in spec.columns],
            keep=spec.keep, delimiter=spec.delimiter, encoding=spec.encoding,
            register=spec.register, progress=beats, report=report,
        )  # fmt: skip
    except _Stopped:
        return _failed(deployment, spec, upload, "interrupted", "the service stopped")
    except TiersError as error:
        return _failed(deployment, spec, upload, error.code, error.message)
    except BaseException:  # noqa: BLE001 - recorded and answered, the process ends
        return _failed(deployment, spec, upload, "internal", "the job failed")
    job = finish_file_job(deployment, spec.job_id, report)
    identifiers = report.rows_in * len(spec.columns)
    if not deployment.embedded:  # the budget is the database's: charged here, by any node
        deployment.budget.charge(access, identifiers)
    upload.acknowledge({"ok": {"job": job.id, "identifiers": identifiers}})
    return 0


_MAIN = os.getpid()


def _stop(_signal: int, _frame: object) -> None:
    if os.getpid() != _MAIN:  # a block worker forked from the runner: ends as by default
        os._exit(143)
    raise _Stopped


def _failed(deployment: Deployment, spec: JobSpec, upload: Upload, code: str, message: str) -> int:
    """The job failed: marked so, its partial outputs removed, and the failure answered."""
    fail_file_job(deployment, spec.job_id, code)
    upload.acknowledge(_error(code, message))
    return 1


def _main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    # The job's id is on the command line too, so that an operator sees which job a process
    # runs; its options and its caller come on standard input.
    spec = JobSpec.from_json(sys.stdin.readline())
    if sys.argv[1:] != [spec.job_id]:
        print(json.dumps(_error("invalid_request", "the runner was started for another job")))
        return 2
    return run(spec)


if __name__ == "__main__":
    sys.exit(_main())
