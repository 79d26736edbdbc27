"""The master key (key-encryption key): what every backend does, and the key held in memory.

A master key does three things: AES-256-GCM encryption of key material (wrapping), HMAC-SHA-256
of messages (the check value, derived secrets, the seals of rows of power), and nothing else.
:class:`KeyEncryptionKey` names those operations; :class:`MasterKey` is the key read from a
file or the environment and held in this process's memory, and :mod:`keys.hsm` the key kept
in a PKCS#11 token, where it is used but never exported.

Only domain keys wrapped under the master key are stored, and the database keeps a *check
value* (an HMAC of a fixed label under the master key) so that a wrong master key is reported
clearly instead of failing on the first unwrap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from errors import ConfigurationError, KeyUnavailable
from keys._secret import Secret

__all__ = ["DEVELOPMENT_MARKER", "KeyEncryptionKey", "MasterKey", "write_development_key"]

MASTER_KEY_BYTES = 32
DEVELOPMENT_MARKER = "# tiers DEVELOPMENT master key: never use it in production"
CHECK_LABEL = b"tiers master key check value v1"
DERIVED_PREFIX = b"tiers derived\x00"

Attribute = str | int | bool


def refuse_shared(mode: int, what: str) -> None:
    """Refuse a secret's file (``mode`` from its stat) that group or others may use."""
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyUnavailable(
            f"{what} is readable by other users; run chmod 600 on it",
            code="master_key_permissions",
        )


class KeyEncryptionKey(ABC):
    """What the service asks of a master key, whichever backend holds it.

    ``source`` says where it came from (shown in messages, never the key), ``backend`` is
    ``file`` or ``pkcs11``, and ``development`` marks a generated development key.
    """

    __slots__ = ()
    source: str
    development: bool
    backend: str

    @abstractmethod
    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        """AES-256-GCM: the ciphertext followed by its 16-byte tag."""

    @abstractmethod
    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        """The inverse of :meth:`encrypt`; raises ``cryptography.exceptions.InvalidTag`` when
        the data or the associated data were altered (or the key is another)."""

    @abstractmethod
    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA-256 of ``message`` under the key's MAC half."""

    @abstractmethod
    def keyed_mac(self, label: bytes) -> Callable[[bytes], bytes]:
        """A MAC of its own for ``label`` (the seals of rows of power), as a function."""

    @abstractmethod
    def describe(self) -> dict[str, Attribute]:
        """Where the key is and what it is allowed to do, never its material."""

    def check_available(self) -> None:
        """Raise :class:`~errors.KeyUnavailable` unless the key can be used now (a token
        that went away); a key held in memory always can."""
        return

    def derived(self, label: bytes) -> bytes:
        """A secret of its own for ``label`` (HMAC-SHA-256 of the label under the key): the
        console's CSRF tokens are signed with one, so that every worker signs alike."""
        return self.mac(DERIVED_PREFIX + label)

    def check_value(self) -> str:
        """A public value that identifies this key without revealing it (stored in the
        database)."""
        return f"hmac-sha256:{self.mac(CHECK_LABEL).hex()[:32]}"

    def matches(self, check_value: str) -> bool:
        return hmac.compare_digest(self.check_value(), check_value)

    def __reduce__(self) -> tuple[()]:
        raise TypeError("a master key cannot be pickled")


class MasterKey(KeyEncryptionKey):
    """A 256-bit key-encryption key held in memory (from a file or the environment).
    ``repr`` shows only where it came from."""

    __slots__ = ("_secret", "development", "source")
    backend = "file"

    def __init__(self, material: bytes, *, source: str, development: bool = False) -> None:
        if len(material) != MASTER_KEY_BYTES:
            raise KeyUnavailable(
                f"the master key from {source} must be {MASTER_KEY_BYTES} bytes",
                code="bad_master_key",
            )
        self._secret = Secret(material, label="master key")
        self.source = source
        self.development = development

    @classmethod
    def from_base64(cls, text: str, *, source: str = "TIERS_MASTER_KEY") -> MasterKey:
        """Parse a base64 master key. Raises :class:`KeyUnavailable` (never echoing the text)."""
        try:
            material = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyUnavailable(
                f"the master key from {source} is not valid base64", code="bad_master_key"
            ) from None
        return cls(material, source=source)

    @classmethod
    def from_file(cls, path: Path) -> MasterKey:
        """Read a master key file: one base64 line, ``#`` comment lines allowed.

        Raises :class:`KeyUnavailable` when the file is missing, unreadable, readable by group
        or others, or does not hold a 32-byte base64 key. A file that carries the development
        marker yields a key flagged ``development``.
        """
        source = f"file {path}"
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyUnavailable(f"no master key {source}", code="no_master_key") from None
        except (OSError, UnicodeDecodeError):
            raise KeyUnavailable(
                f"cannot read the master key {source}", code="no_master_key"
            ) from None
        refuse_shared(mode, f"the master key {source}")
        lines = [line.strip() for line in text.splitlines()]
        development = DEVELOPMENT_MARKER in lines
        payload = [line for line in lines if line and not line.startswith("#")]
        if len(payload) != 1:
            raise KeyUnavailable(
                f"the master key {source} must hold exactly one base64 line", code="bad_master_key"
            )
        key = cls.from_base64(payload[0], source=source)
        key.development = development
        return key

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        return AESGCM(self._secret.reveal()).encrypt(nonce, plaintext, associated_data)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        return AESGCM(self._secret.reveal()).decrypt(nonce, data, associated_data)

    def mac(self, message: bytes) -> bytes:
        return hmac.new(self._secret.reveal(), message, hashlib.sha256).digest()

    def keyed_mac(self, label: bytes) -> Callable[[bytes], bytes]:
        """HMAC-SHA-256 under a key derived by HKDF-SHA-256 (RFC 5869) with ``label`` as its
        info: the derived key is kept in memory, beside the master key it comes from."""
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
            self._secret.reveal()
        )
        key = Secret(derived, label="derived MAC key")
        return lambda message: hmac.new(key.reveal(), message, hashlib.sha256).digest()

    def describe(self) -> dict[str, Attribute]:
        return {"backend": self.backend, "source": self.source, "development": self.development}

    def __repr__(self) -> str:
        flag = ", development" if self.development else ""
        return f"<MasterKey from {self.source}{flag} (redacted)>"

    __str__ = __repr__


def write_development_key(path: Path) -> MasterKey:
    """Create a new random development master key file with mode 0600.

    Refuses to overwrite an existing file (that would orphan every key wrapped under it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    material = secrets.token_bytes(MASTER_KEY_BYTES)
    body = f"{DEVELOPMENT_MARKER}\n{base64.b64encode(material).decode('ascii')}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"{path} already exists; refusing to overwrite a master key", code="master_key_exists"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    return MasterKey(material, source=f"file {path}", development=True)
