"""Uploads in parts across nodes: a part that reaches a node other than its job's.

A file job runs in a runner process on the node that opened it (:mod:`tiers.job_runs`), and
receives its parts through that host's Unix socket. Behind a load balancer, the parts of one
upload reach any node. On PostgreSQL each runner therefore registers its node and a key of the
job's own (:class:`RunnerRelay`: 256 random bits, wrapped under the master key) in
``job_nodes``. A node that receives a part for a job whose runner is on another node
(:func:`runner_elsewhere`) encrypts it under the job's key (AES-256-GCM, bound to the job and
the part's number) into ``job_parts`` and waits until the runner has taken it, as the runner's
own socket would make it wait (:func:`relay_part`); the runner looks for the next part there
whenever it waits for input, applies it as if it came from its socket, and keeps only its
digest, so that a part sent again to any node is recognised. A node asked to complete such a
job checks that every part was applied, records the request, and waits for the job's end
(:func:`relay_completion`).

Nothing clear is at rest: a part is in the database only encrypted, and only until its runner
has read it. A database writer who alters it fails the job (``part_tampered``); one who reads
it learns nothing without the master key. When a job ends, its rows go.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import tempfile
import time
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import IntegrityError

from errors import InvalidRequest, RowTampered, StateConflict
from keys import KeyIdentity, unwrap_key, wrap_key
from tiers.deployment import Deployment
from tiers.jobs import fail_file_job
from tiers.settings import Settings
from tiers.storage import job_relay
from tiers.storage import jobs as jobs_repo
from tiers.storage.job_relay import JobNode
from tiers.storage.jobs import JobRecord

__all__ = [
    "POLL_SECONDS",
    "RunnerRelay",
    "leave_part",
    "relay_completion",
    "relay_part",
    "runner_elsewhere",
]

# How often a waiting node or runner looks at the database.
POLL_SECONDS = 0.05
_NONCE = 12


def node_name(settings: Settings) -> str:
    """This node's name: ``TIERS_NODE_NAME``, or its host and temporary folder (where the
    runners' sockets are), which tell whether a runner can be reached from here."""
    if settings.node_name:
        return settings.node_name
    name = f"{socket.gethostname()}:{tempfile.gettempdir()}"
    return name if len(name) <= 128 else hashlib.sha256(name.encode()).hexdigest()


def _identity(job_id: str) -> KeyIdentity:
    return KeyIdentity(purpose="job-parts", owner=job_id, version=1)


def _bound(job_id: str, number: int) -> bytes:
    return f"tiers-job-part-v1|{job_id}|{number}".encode()


def _cipher(deployment: Deployment, node: JobNode, job_id: str) -> AESGCM:
    wrapped = base64.b64decode(node.part_key)
    return AESGCM(unwrap_key(deployment.master, wrapped, _identity(job_id)))


class RunnerRelay:
    """The runner's side: its registration, and the parts other nodes left for it."""

    def __init__(self, deployment: Deployment, job_id: str, cipher: AESGCM) -> None:
        self._deployment = deployment
        self._job_id = job_id
        self._cipher = cipher
        self._looked = 0.0

    @classmethod
    def register(cls, deployment: Deployment, job_id: str) -> RunnerRelay | None:
        """Register the job's node and key (PostgreSQL); None on SQLite, whose one host
        reaches every runner through its socket."""
        if deployment.embedded:
            return None
        key = secrets.token_bytes(32)
        wrapped = base64.b64encode(wrap_key(deployment.master, key, _identity(job_id))).decode()
        with deployment.transaction() as connection:
            job_relay.register(
                connection, job_id=job_id, node=node_name(deployment.settings), part_key=wrapped
            )
        return cls(deployment, job_id, AESGCM(key))

    def due(self) -> bool:
        """Whether it is time to look at the database again (at most every POLL_SECONDS)."""
        now = time.monotonic()
        if now - self._looked < POLL_SECONDS:
            return False
        self._looked = now
        return True

    def fetch(self, number: int) -> tuple[bytes, str] | None:
        """Part ``number`` and its digest if another node left it; raises
        :class:`~errors.RowTampered` (``part_tampered``) if it fails its authentication."""
        with self._deployment.engine.connect() as connection:
            row = job_relay.part(connection, job_id=self._job_id, number=number)
        if row is None or row.data is None:
            return None
        try:
            data = self._cipher.decrypt(
                row.data[:_NONCE], row.data[_NONCE:], _bound(self._job_id, number)
            )
        except InvalidTag:
            raise RowTampered(
                "a part relayed through the database was altered", code="part_tampered"
            ) from None
        if hashlib.sha256(data).hexdigest() != row.sha256:
            raise RowTampered("a relayed part does not match its digest", code="part_tampered")
        return data, row.sha256

    def applied(self, number: int, sha256: str) -> None:
        """Part ``number`` was applied (from whichever node): only its digest stays. If another
        node relayed that number meanwhile with another content, it finds this digest."""
        with self._deployment.transaction() as connection:
            row = job_relay.part(connection, job_id=self._job_id, number=number)
            if row is None:
                try:
                    with connection.begin_nested():
                        job_relay.add_part(
                            connection, job_id=self._job_id, number=number, sha256=sha256, data=None
                        )
                    return
                except IntegrityError:
                    pass  # relayed at this instant: marked below
            job_relay.applied(connection, job_id=self._job_id, number=number, sha256=sha256)

    def completion(self) -> int | None:
        """The last part, once another node was asked to complete the job."""
        with self._deployment.engine.connect() as connection:
            node = job_relay.node_of(connection, job_id=self._job_id)
        return None if node is None else node.complete_parts


def runner_elsewhere(
    deployment: Deployment, job_id: str, socket_path: os.PathLike[str]
) -> JobNode | None:
    """The node of ``job_id``'s runner if it is another node (its socket is not here); None
    when the runner is this node's (or was, and died) or on SQLite."""
    if deployment.embedded or os.path.exists(socket_path):
        return None
    with deployment.engine.connect() as connection:
        node = job_relay.node_of(connection, job_id=job_id)
    if node is None or node.node == node_name(deployment.settings):
        return None
    return node


def relay_part(
    deployment: Deployment, node: JobNode, *, job_id: str, number: int, data: bytes,
    sha256: str | None,
) -> bool:  # fmt: skip
    """Leave part ``number`` for the runner on ``node`` and wait until it is applied; returns
    False when it had been received before (same digest). Refused as the runner would refuse
    it: ``part_digest``, ``part_conflict``, ``part_out_of_order``; ``job_ended`` if the job
    ends first without it."""
    if number < 1:
        raise InvalidRequest("a part number counts from 1", code="invalid_request")
    found = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256 != found:
        raise InvalidRequest("the part does not match its SHA-256 digest", code="part_digest")
    if not leave_part(deployment, node, job_id=job_id, number=number, data=data, found=found):
        return False
    while True:
        time.sleep(POLL_SECONDS)
        with deployment.engine.connect() as connection:
            row = job_relay.part(connection, job_id=job_id, number=number)
            job = jobs_repo.get(connection, job_id=job_id)
        if row is None:  # the job ended and its parts went: done means it had this one
            if job is not None and job.state == "done":
                return True
            raise StateConflict("the job takes no more input (it has ended)", code="job_ended")
        if row.sha256 != found:
            raise StateConflict(
                f"part {number} was received with another content", code="part_conflict"
            )
        if row.data is None:
            return True
        _still_running(deployment, job)


def leave_part(
    deployment: Deployment, node: JobNode, *, job_id: str, number: int, data: bytes,
    found: str | None = None,
) -> bool:  # fmt: skip
    """Leave part ``number`` encrypted for the runner on ``node`` (without waiting for it);
    False if it was applied before (same digest). Refused like :func:`relay_part`.
    ``found``: the part's SHA-256 when the caller computed it already."""
    found = found or hashlib.sha256(data).hexdigest()
    cipher = _cipher(deployment, node, job_id)
    nonce = secrets.token_bytes(_NONCE)
    sealed = nonce + cipher.encrypt(nonce, data, _bound(job_id, number))
    for _ in range(2):  # a second look if another node left the same number at this instant
        with deployment.transaction() as connection:
            _still_running(deployment, jobs_repo.get(connection, job_id=job_id))
            row = job_relay.part(connection, job_id=job_id, number=number)
            if row is not None:
                if row.sha256 != found:
                    raise StateConflict(
                        f"part {number} was received with another content", code="part_conflict"
                    )
                return row.data is not None  # pending: wait for it; applied: not again
            held, _ = job_relay.parts_summary(connection, job_id=job_id)
            if number != held + 1:
                raise StateConflict(f"the next part is {held + 1}", code="part_out_of_order")
            try:
                with connection.begin_nested():
                    job_relay.add_part(
                        connection, job_id=job_id, number=number, sha256=found, data=sealed
                    )
                return True
            except IntegrityError:
                continue
    raise StateConflict(f"part {number} is being received by another node", code="part_conflict")


def _still_running(deployment: Deployment, job: JobRecord | None) -> None:
    """Raise ``job_ended`` if the job ended; fail it as interrupted first if its runner
    stopped beating (its node died with it)."""
    if job is None or job.state != "running":
        raise StateConflict("the job takes no more input (it has ended)", code="job_ended")
    stale = deployment.settings.job_stale_seconds
    if (datetime.now(UTC) - job.heartbeat_at).total_seconds() > stale:
        fail_file_job(deployment, job.id, "interrupted")
        raise StateConflict("the job's node stopped answering", code="job_ended")


def relay_completion(deployment: Deployment, job_id: str, parts: int) -> JobRecord:
    """Ask the job's runner on another node to end the job after part ``parts``, and wait for
    its end; returns the job (done or failed, as its runner ended it)."""
    with deployment.transaction() as connection:
        held, applied = job_relay.parts_summary(connection, job_id=job_id)
        if held != parts or applied != parts:
            raise StateConflict(f"the job has received parts 1 to {applied}", code="part_missing")
        job_relay.ask_completion(connection, job_id=job_id, parts=parts)
    while True:
        time.sleep(POLL_SECONDS)
        with deployment.engine.connect() as connection:
            job = jobs_repo.get(connection, job_id=job_id)
        assert job is not None
        if job.state != "running":
            return job
        _still_running(deployment, job)
