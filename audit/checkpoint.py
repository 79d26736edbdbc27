"""Signed checkpoints of the access log (Ed25519), in the spirit of C2SP tlog-checkpoint.

A checkpoint commits to the first ``tree_size`` entries: their RFC 6962 root, the hash of the
last of them (the chain head) and the time it was signed. Its signed body is::

    <origin>
    <tree size>
    <base64 root>
    chain <hex hash of entry tree_size-1, or 64 zeros>
    time <UTC time>
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

from tiers.errors import AuditIntegrityError

__all__ = ["ORIGIN", "Checkpoint", "CheckpointSigner", "key_id", "verify_checkpoint"]

ORIGIN = "tiers access log"


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

    def sign(self, *, tree_size: int, root: bytes, chain: str, now: datetime) -> Checkpoint:
        body = _body(ORIGIN, tree_size, root, chain, now)
        return Checkpoint(
            tree_size, root, chain, now, self._private.sign(body), key_id(self.public_key)
        )

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
