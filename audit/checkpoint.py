"""Signed checkpoints of the access log (Ed25519): C2SP tlog-checkpoint bodies, signed notes.

A checkpoint commits to the first ``tree_size`` entries: their RFC 6962 root, the hash of the
last of them (the chain head) and the time it was signed. Its body is a tlog-checkpoint note
text (c2sp.org/tlog-checkpoint@v1.0.0) with two extension lines::

    <origin>
    <tree size>
    <base64 root>
    chain <hex hash of entry tree_size-1, or 64 zeros>
    time <UTC time>

and its signature is the Ed25519 (type 0x01) signature of that text, so that a checkpoint is
also a C2SP signed note (:meth:`Checkpoint.note`), signed by the key named after the origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.note import ED25519, Note, NoteSignature, VerifierKey, valid_key_name, verify_note
from errors import AuditIntegrityError

__all__ = [
    "ORIGIN",
    "Checkpoint",
    "CheckpointSigner",
    "checkpoint_from_note",
    "key_id",
    "note_key_name",
    "verify_checkpoint",
]

# The origin of the logs made before origins were chosen per deployment (kept so that their
# checkpoints still verify); a new deployment picks its own (tiers.admin.initialise).
ORIGIN = "tiers access log"


def note_key_name(origin: str) -> str:
    """The name of the log's key in signed notes: the origin, where it is a valid key name."""
    return origin if valid_key_name(origin) else "-".join(origin.split()).replace("+", "-")


def key_id(public_key: bytes) -> str:
    """A short public fingerprint of a checkpoint key, to compare with a published one."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root: bytes
    chain: str
    time: datetime
    signature: bytes
    key: str
    origin: str = ORIGIN

    def body(self) -> bytes:
        return _body(self.origin, self.tree_size, self.root, self.chain, self.time)

    def note(self, public_key: bytes, cosignatures: tuple[NoteSignature, ...] = ()) -> Note:
        """The checkpoint as a C2SP signed note, with any witness cosignatures after it."""
        key = VerifierKey(note_key_name(self.origin), ED25519, public_key)
        own = NoteSignature(key.name, key.key_id, self.signature)
        return Note(self.body().decode("utf-8"), (own, *cosignatures))

    def as_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": base64.b64encode(self.root).decode(),
            "chain": self.chain,
            "time": _time(self.time),
            "signature": base64.b64encode(self.signature).decode(),
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Checkpoint:
        try:
            if not isinstance(raw, dict):
                raise TypeError("a checkpoint is an object")
            return cls(
                tree_size=int(raw["tree_size"]),
                root=base64.b64decode(raw["root"], validate=True),
                chain=str(raw["chain"]),
                time=datetime.strptime(raw["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                signature=base64.b64decode(raw["signature"], validate=True),
                key=str(raw["key"]),
                origin=str(raw["origin"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise AuditIntegrityError("malformed checkpoint", code="malformed_checkpoint") from None


def checkpoint_from_note(note: Note, public_key: bytes) -> Checkpoint:
    """The checkpoint a signed note holds; raises unless the log key ``public_key`` signed it
    and its text is a checkpoint of this log's form."""
    lines = note.text.split("\n")
    if len(lines) != 6 or lines[5]:
        raise AuditIntegrityError("malformed checkpoint", code="malformed_checkpoint")
    origin = lines[0]
    key = VerifierKey(note_key_name(origin), ED25519, public_key)
    verify_note(note, [key])
    own = next(s for s in note.signatures if s.name == key.name and s.key_id == key.key_id)
    try:
        if not lines[3].startswith("chain ") or not lines[4].startswith("time "):
            raise ValueError("extension lines")
        size = int(lines[1])
        if str(size) != lines[1] or size < 0:
            raise ValueError("size")
        moment = datetime.strptime(lines[4][5:], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        checkpoint = Checkpoint(
            tree_size=size,
            root=base64.b64decode(lines[2], validate=True),
            chain=lines[3][6:],
            time=moment,
            signature=own.signature,
            key=key_id(public_key),
            origin=origin,
        )
    except (ValueError, binascii.Error):
        raise AuditIntegrityError("malformed checkpoint", code="malformed_checkpoint") from None
    if checkpoint.body().decode("utf-8") != note.text:
        raise AuditIntegrityError("malformed checkpoint", code="malformed_checkpoint")
    return checkpoint


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _body(origin: str, size: int, root: bytes, chain: str, moment: datetime) -> bytes:
    lines = [
        origin,
        str(size),
        base64.b64encode(root).decode(),
        f"chain {chain}",
        f"time {_time(moment)}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


class CheckpointSigner:
    """The service's checkpoint key. ``repr`` shows only the public fingerprint."""

    __slots__ = ("_private", "public_key")

    def __init__(self, private_bytes: bytes) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(private_bytes)
        self.public_key = self._private.public_key().public_bytes_raw()

    def sign(
        self, *, tree_size: int, root: bytes, chain: str, now: datetime, origin: str = ORIGIN
    ) -> Checkpoint:
        body = _body(origin, tree_size, root, chain, now)
        return Checkpoint(
            tree_size,
            root,
            chain,
            now,
            self._private.sign(body),
            key_id(self.public_key),
            origin,
        )

    def verifier_key(self, origin: str) -> VerifierKey:
        """The log's public key as witnesses and verifiers name it (C2SP vkey)."""
        return VerifierKey(note_key_name(origin), ED25519, self.public_key)

    def __repr__(self) -> str:
        return f"<CheckpointSigner {key_id(self.public_key)} (private key redacted)>"


def verify_checkpoint(checkpoint: Checkpoint, public_key: bytes) -> Literal[True]:
    """Raises :class:`AuditIntegrityError` unless ``public_key`` signed ``checkpoint``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            checkpoint.signature, checkpoint.body()
        )
    except (InvalidSignature, ValueError):
        raise AuditIntegrityError(
            f"checkpoint at size {checkpoint.tree_size}: bad signature", code="bad_signature"
        ) from None
    return True
