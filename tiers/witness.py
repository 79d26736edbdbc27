"""A witness of tiers access logs (C2SP tlog-witness ``add-checkpoint``, tlog-cosignature/v1).

A witness is run by another organisation on another host (for an alliance: the regulator, or
an auditing firm). It keeps, for each log it follows, the newest checkpoint it cosigned, and
cosigns a new one only if the log's key signed it and a consistency proof shows that it extends
that one. A conflict (a proof that fails, or two roots for one size) is refused and remembered
in ``conflicts.log``: it is the evidence that the log rewrote its history.

Its home holds ``witness.key`` (its Ed25519 key, owner-only), ``name`` and ``state.json``
(replaced atomically under a lock, so that two requests cannot roll it back).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, checkpoint_from_note, note_key_name
from audit.merkle import verify_consistency
from audit.note import COSIGNATURE, Note, VerifierKey, cosign, valid_key_name
from errors import AlreadyExists, AuditIntegrityError, InvalidRequest, NotInitialised

__all__ = ["WitnessAnswer", "WitnessHome", "init_witness"]

MAX_PROOF = 63


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    """An HTTP answer: status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def init_witness(home: Path, name: str) -> VerifierKey:
    """Create a witness home with a new key; returns its verifier key (to give to the log)."""
    if not valid_key_name(name):
        raise InvalidRequest("a witness name has no spaces and no '+'", code="bad_name")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = home / "witness.key"
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists("this witness home has a key already", code="witness_exists") from None
    private = Ed25519PrivateKey.generate()
    try:
        os.write(fd, private.private_bytes_raw())
        os.fsync(fd)
    finally:
        os.close(fd)
    (home / "name").write_text(name + "\n", encoding="utf-8")
    return VerifierKey.of(name, private, COSIGNATURE)


class WitnessHome:
    """A witness's key and state, and the ``add-checkpoint`` decision."""

    def __init__(self, home: Path, log_keys: list[VerifierKey]) -> None:
        try:
            seed = (home / "witness.key").read_bytes()
            self.name = (home / "name").read_text(encoding="utf-8").strip()
        except OSError:
            raise NotInitialised(
                "no witness here: run `tiers witness init`", code="no_witness"
            ) from None
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.home = home
        self.key = VerifierKey.of(self.name, self._private, COSIGNATURE)
        self.log_keys = {key.name: key for key in log_keys}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<WitnessHome {self.name} (private key redacted)>"

    # -- state -----------------------------------------------------------------------------

    def _state(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads((self.home / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise NotInitialised("the witness state is damaged", code="witness_state_damaged")
        return data

    def _save(self, state: dict[str, dict[str, object]]) -> None:
        temporary = self.home / "state.json.tmp"
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(state, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.home / "state.json")
        fd = os.open(self.home, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _conflict(self, origin: str, reason: str, note: str) -> None:
        record = {
            "time": datetime.now(UTC).isoformat(),
            "origin": origin,
            "reason": reason,
            "note": note,
        }
        with (self.home / "conflicts.log").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def conflicts(self) -> list[dict[str, object]]:
        path = self.home / "conflicts.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    # -- add-checkpoint --------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> WitnessAnswer:
        """Answer one ``add-checkpoint`` request as c2sp.org/tlog-witness says."""
        try:
            old, proof, note = _parse_request(body)
        except ValueError:
            return WitnessAnswer(400, "malformed request\n")
        origin = note.text.split("\n", 1)[0]
        key = next((k for k in self.log_keys.values() if _names_origin(k, origin)), None)
        if key is None:
            return WitnessAnswer(404, "unknown log\n")
        try:
            checkpoint = checkpoint_from_note(note, key.public_key)
        except AuditIntegrityError:
            return WitnessAnswer(403, "no valid signature of a known log key\n")
        if old > checkpoint.tree_size:
            return WitnessAnswer(400, "old size is larger than the checkpoint\n")
        with self._lock, self._file_lock():
            return self._decide(old, proof, note, checkpoint)

    def _decide(
        self, old: int, proof: list[bytes], note: Note, checkpoint: Checkpoint
    ) -> WitnessAnswer:
        origin, size, root = checkpoint.origin, checkpoint.tree_size, checkpoint.root
        state = self._state()
        known = state.get(origin)
        known_size = int(str(known["size"])) if known else 0
        if old != known_size:
            return WitnessAnswer(409, f"{known_size}\n", "text/x.tlog.size")
        known_root = base64.b64decode(str(known["root"])) if known else b""
        if known and old == size and known_root != root:
            self._conflict(origin, f"two roots for size {size}", note.encode())
            return WitnessAnswer(409, f"{known_size}\n", "text/x.tlog.size")
        if known and old < size:
            try:
                verify_consistency(old, size, known_root, root, proof)
            except AuditIntegrityError:
                self._conflict(origin, f"no consistency from size {old} to {size}", note.encode())
                return WitnessAnswer(422, "the consistency proof does not verify\n")
        elif proof:
            return WitnessAnswer(422, "a proof from size 0 must be empty\n")
        # Times only move forward, whatever the clock does.
        timestamp = max(int(time.time()), int(str(known.get("time", 0))) if known else 0)
        state[origin] = {"size": size, "root": base64.b64encode(root).decode(), "time": timestamp}
        self._save(state)
        line = cosign(note.text, self.name, self._private, timestamp)
        return WitnessAnswer(200, line.line())

    def _file_lock(self) -> _FileLock:
        return _FileLock(self.home / "state.lock")


class _FileLock:
    """An exclusive lock on a file, for witnesses served by several processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)


def _names_origin(key: VerifierKey, origin: str) -> bool:
    return key.name == note_key_name(origin)


def _parse_request(body: bytes) -> tuple[int, list[bytes], Note]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("encoding") from None
    head, separator, rest = text.partition("\n\n")
    if not separator:
        raise ValueError("no blank line")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise ValueError("old line")
    digits = lines[0][4:]
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        raise ValueError("old size")
    if len(lines) - 1 > MAX_PROOF:
        raise ValueError("proof too long")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (ValueError, binascii.Error):
        raise ValueError("proof line") from None
    if any(len(node) != 32 for node in proof):
        raise ValueError("proof line")
    try:
        note = Note.parse(rest)
    except AuditIntegrityError:
        raise ValueError("checkpoint") from None
    return int(digits), proof, note
