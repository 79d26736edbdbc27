"""Wrapping keys under the master key: AES-256-GCM with the key's identity as associated data.

A wrapped key is ``0x01 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag``. The associated data binds the
purpose, owner and version, so a wrapped record copied onto another row does not unwrap.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag

from errors import KeyUnavailable
from keys._encoding import length_prefixed
from keys.master import KeyEncryptionKey

__all__ = ["KeyIdentity", "unwrap_key", "wrap_key"]

WRAP_FORMAT = 1
_NONCE_BYTES = 12


class KeyIdentity:
    """What a wrapped key is: its purpose, owner (domain or ``_service``) and version."""

    __slots__ = ("owner", "purpose", "version")

    def __init__(self, *, purpose: str, owner: str, version: int) -> None:
        self.purpose = purpose
        self.owner = owner
        self.version = version

    def associated_data(self) -> bytes:
        return length_prefixed(
            b"tiers-wrapped-key-v1",
            self.purpose.encode(),
            self.owner.encode(),
            str(self.version).encode(),
        )

    def __repr__(self) -> str:
        return f"<KeyIdentity {self.purpose} {self.owner} v{self.version}>"


def wrap_key(master: KeyEncryptionKey, material: bytes, identity: KeyIdentity) -> bytes:
    """Encrypt ``material`` under the master key, bound to ``identity``."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = master.encrypt(nonce, material, identity.associated_data())
    return bytes([WRAP_FORMAT]) + nonce + sealed


def unwrap_key(master: KeyEncryptionKey, wrapped: bytes, identity: KeyIdentity) -> bytes:
    """Decrypt a wrapped key.

    Raises :class:`KeyUnavailable` when the master key is wrong, the record was altered or moved,
    or the format is unknown; the message does not say which (one opaque failure).
    """
    if len(wrapped) < 1 + _NONCE_BYTES + 16 or wrapped[0] != WRAP_FORMAT:
        raise KeyUnavailable(f"cannot unwrap {identity!r}: unknown or damaged record")
    nonce = wrapped[1 : 1 + _NONCE_BYTES]
    try:
        return master.decrypt(nonce, wrapped[1 + _NONCE_BYTES :], identity.associated_data())
    except InvalidTag:
        raise KeyUnavailable(
            f"cannot unwrap {identity!r}: wrong master key or damaged record"
        ) from None
