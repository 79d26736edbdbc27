"""File jobs run by a process of their own, and uploads in parts.

A job opened here runs in a runner (:mod:`tiers._job_runner`): a process started for it, which
tokenises on the parallel path as the command line does and outlives the requests that feed it.
The service passes it the upload, whole (:func:`stream_to_job`) or in parts (:func:`send_part`,
then :func:`complete_job`), and asks it how far it has got (:func:`job_progress`). The job's
state, counts and outputs are those of any file job (:mod:`tiers.jobs`): listed from its
opening, ``done`` with its outputs in place once the last part is acknowledged, or ``failed``
with nothing delivered. Its access-log entry is the tokenisation's own, written by the runner.

The caller's identifier budget is checked when the job opens and charged when it ends.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import socket
import subprocess  # nosec B404
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from audit import Action
from errors import ConfigurationError, StateConflict, TiersError
from errors.codes import CODES
from tiers._csvio import checked_delimiter, checked_encoding
from tiers._file_rows import plan_of
from tiers._job_runner import JobSpec, recv_frame, send_frame, socket_path
from tiers.auditing import Access
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.files import parse_column_spec
from tiers.jobs import JobRecord, fail_file_job, open_file_job, owned_job
from tiers.relay import relay_completion, relay_part, runner_elsewhere
from tiers.storage import jobs as jobs_repo

__all__ = [
    "JobOptions",
    "PartReceipt",
    "complete_job",
    "job_progress",
    "send_part",
    "start_job",
    "stop_runners",
    "stream_to_job",
]

# How long a runner may take to open the deployment and listen.
_START_SECONDS = 60.0
_FRAME = 1 << 20
_ANSWER_BYTES = 1 << 16
# The runners this process started, until they end.
_STARTED: set[subprocess.Popen[bytes]] = set()
_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True, slots=True)
class JobOptions:
    """How a job reads its file (as :func:`tiers.files.tokenise_file` takes them)."""

    columns: Sequence[str]
    keep: Sequence[str] = ()
    delimiter: str | None = None
    encoding: str = "utf-8"
    register: bool = True

    def checked(self) -> JobOptions:
        """Refuse options that cannot work, before a job is opened for them."""
        specs = [parse_column_spec(text) for text in self.columns]
        plan_of(list(dict.fromkeys([*(s.name for s in specs), *self.keep])), specs, self.keep)
        checked_encoding(self.encoding)
        return dataclasses.replace(self, delimiter=checked_delimiter(self.delimiter))


@dataclasses.dataclass(frozen=True, slots=True)
class PartReceipt:
    """A part acknowledged: ``applied`` False when it had been received before."""

    part: int
    applied: bool


def start_job(
    deployment: Deployment,
    *,
    access: Access,
    domain: str,
    options: JobOptions,
    job_id: str | None = None,
) -> JobRecord:
    """Open a file job (``job_id`` when the caller opened it already) and start its runner; the
    job is ``running`` and takes its input from now on."""
    require(access, Action.TOKENISE_FILE, domain)
    deployment.budget.admit(access)
    options = options.checked()
    job_id = job_id or open_file_job(deployment, access=access, domain=domain)
    spec = JobSpec(
        job_id=job_id, domain=domain, columns=list(options.columns), keep=list(options.keep),
        delimiter=options.delimiter, encoding=options.encoding, register=options.register,
        access={**dataclasses.asdict(access), "now": access.now.isoformat()},
    )  # fmt: skip
    try:
        _launch(deployment, spec)
    except BaseException as error:
        fail_file_job(
            deployment, job_id, error.code if isinstance(error, TiersError) else "internal"
        )
        raise
    with deployment.engine.connect() as connection:
        job = jobs_repo.get(connection, job_id=job_id)
    assert job is not None
    return job


def _launch(deployment: Deployment, spec: JobSpec) -> None:
    """Start the runner and wait until it listens (or says why it cannot). The one command run
    is this interpreter on this package's runner module (hence bandit's B404 and B603 waived)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TIERS_")}
    environment.update(deployment.settings.environment())
    runner = subprocess.Popen(  # noqa: S603  # nosec B603
        [sys.executable, "-m", "tiers._job_runner", spec.job_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
    )
    with _LOCK:
        _STARTED.add(runner)
    # Reaped when it ends, so that no finished runner lingers as a zombie.
    threading.Thread(target=_reap, args=(runner,), daemon=True, name="job-runner-reaper").start()
    assert runner.stdin is not None and runner.stdout is not None
    with runner.stdin, runner.stdout:
        runner.stdin.write(spec.to_json().encode() + b"\n")
        runner.stdin.flush()
        ready, _, _ = select.select([runner.stdout], [], [], _START_SECONDS)
        line = runner.stdout.readline() if ready else b""
    answer = json.loads(line) if line.strip() else {}
    if "error" in answer:  # it says why: the database or the master key, say
        runner.kill()
        raise _raised(answer["error"])
    if "ok" not in answer:
        runner.kill()
        raise ConfigurationError(
            "the job's own process did not start (see the service's log)", code="job_process"
        )


def _reap(runner: subprocess.Popen[bytes]) -> None:
    runner.wait()
    with _LOCK:
        _STARTED.discard(runner)


def stop_runners(timeout: float = 10.0) -> int:
    """Stop the runners this process started that still run (the service is stopping): each
    fails its job (``interrupted``) and removes its partial outputs. Returns how many."""
    with _LOCK:
        running = [runner for runner in _STARTED if runner.poll() is None]
    for runner in running:
        runner.terminate()
    for runner in running:
        try:
            runner.wait(timeout)
        except subprocess.TimeoutExpired:
            runner.kill()
    return len(running)


def _raised(error: dict[str, Any]) -> Exception:
    """The runner's error as the exception of its code (see :mod:`errors.codes`); an internal
    error of the runner (no code of the table) as an internal error here."""
    code, message = str(error.get("code")), str(error.get("message"))
    if code not in CODES:
        return RuntimeError("the file job failed in its process")
    try:
        return CODES[code].error(message, code=code)
    except TypeError:  # a class of its own signature: never a file job's
        return RuntimeError("the file job failed in its process")


def _ask(
    deployment: Deployment, job: JobRecord, header: dict[str, Any],
    data: IO[bytes] | bytes | None = None, timeout: float | None = None,
) -> Any:  # fmt: skip
    """Send one message to ``job``'s runner and return its answer's ``ok`` (or raise its
    error). A runner that is not there, or ends without answering, has died unless the job
    ended first: the job is then failed (``interrupted``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        answer = None
        try:
            connection.connect(str(socket_path(job.id)))
            send_frame(connection, json.dumps(header).encode())
            if data is not None:
                _send_data(connection, data)
            answer = recv_frame(connection, _ANSWER_BYTES)
        except FileNotFoundError:
            pass
        except ConnectionRefusedError:  # the socket of a runner that was killed
            socket_path(job.id).unlink(missing_ok=True)
        except ConnectionError:
            pass
    if answer is None:
        fail_file_job(deployment, job.id, "interrupted")
        raise StateConflict("the job takes no more input (it has ended)", code="job_ended")
    body = json.loads(answer)
    if "error" in body:
        raise _raised(body["error"])
    return body["ok"]


def _send_data(connection: socket.socket, data: IO[bytes] | bytes) -> None:
    """``data`` as frames, then the empty frame; a stream that fails leaves it unended, so
    that the runner takes the upload as cut off."""
    if isinstance(data, bytes):
        for start in range(0, len(data), _FRAME):
            send_frame(connection, data[start : start + _FRAME])
    else:
        while chunk := data.read(_FRAME):
            send_frame(connection, chunk)
    send_frame(connection, b"")


def _running(deployment: Deployment, access: Access, job_id: str) -> JobRecord:
    job = owned_job(deployment, access, job_id)
    if job.state != "running":
        raise StateConflict(f"the job is not receiving ({job.state})", code="job_ended")
    return job


def send_part(
    deployment: Deployment, *, access: Access, job_id: str, number: int, data: bytes,
    sha256: str | None = None,
) -> PartReceipt:  # fmt: skip
    """Give the job part ``number`` of its file (``sha256``: its digest, checked when given);
    answered once it is applied, or at once when it had been received before."""
    job = _running(deployment, access, job_id)
    elsewhere = runner_elsewhere(deployment, job.id, socket_path(job.id))
    if elsewhere is not None:  # another node runs it: the part goes through the database
        applied = relay_part(
            deployment, elsewhere, job_id=job.id, number=number, data=data, sha256=sha256
        )
        return PartReceipt(part=number, applied=applied)
    answer = _ask(deployment, job, {"op": "part", "number": number, "sha256": sha256}, data)
    return PartReceipt(part=number, applied=bool(answer["applied"]))


def complete_job(deployment: Deployment, *, access: Access, job_id: str, parts: int) -> JobRecord:
    """End the job's input after part ``parts``; returns the job once it has ended."""
    job = _running(deployment, access, job_id)
    if runner_elsewhere(deployment, job.id, socket_path(job.id)) is not None:
        return _completed_elsewhere(relay_completion(deployment, job.id, parts))
    return _ended(
        deployment, access, job, _ask(deployment, job, {"op": "complete", "parts": parts})
    )


def _completed_elsewhere(job: JobRecord) -> JobRecord:
    """A job its runner on another node ended: done, or its error raised as the runner's
    own answer would have raised it."""
    if job.state == "done":
        return job
    code = job.error_code or "internal"
    raise _raised({"code": code, "message": f"the file job failed ({code})"})


def stream_to_job(
    deployment: Deployment, *, access: Access, job_id: str, stream: IO[bytes]
) -> JobRecord:
    """Give the job its whole file as ``stream`` reads it; returns the job once it has ended."""
    job = _running(deployment, access, job_id)
    return _ended(deployment, access, job, _ask(deployment, job, {"op": "stream"}, stream))


def _ended(deployment: Deployment, access: Access, job: JobRecord, answer: Any) -> JobRecord:
    if deployment.embedded:  # in this process's memory; on PostgreSQL the runner charged it
        deployment.budget.charge(access, int(answer["identifiers"]))
    with deployment.engine.connect() as connection:
        ended = jobs_repo.get(connection, job_id=job.id)
    assert ended is not None
    return ended


def job_progress(job: JobRecord) -> dict[str, int] | None:
    """How far a running job has got (bytes and parts received, rows read and rejected), or
    None when its runner does not answer at once (it is busy or has ended, or the job runs in
    a worker's thread)."""
    if job.state != "running":
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(2.0)
        try:
            connection.connect(str(socket_path(job.id)))
            send_frame(connection, json.dumps({"op": "progress"}).encode())
            answer = recv_frame(connection, _ANSWER_BYTES)
        except OSError:
            return None
    progress: dict[str, int] | None = json.loads(answer).get("ok") if answer else None
    return progress
