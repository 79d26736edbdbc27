"""C2SP signed notes, verifier keys and Ed25519 witness cosignatures (pure).

- ``signed-note`` (c2sp.org/signed-note@v1.0.0): a text ending in a newline, a blank line, then
  signature lines ``— <key name> base64(key ID ‖ signature)``. The key ID is
  ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]``; type ``0x01`` is a plain Ed25519 signature
  over the text.
- Verifier keys (the ``vkey`` form of golang.org/x/mod/sumdb/note): ``<name>+<key ID in
  hex>+base64(type ‖ public key)``.
- ``tlog-cosignature`` (c2sp.org/tlog-cosignature, type ``0x04``): a witness signs
  ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint text, and its signature is
  ``key ID ‖ uint64 t (big-endian) ‖ Ed25519 signature``.

Verification raises :class:`~errors.AuditIntegrityError` or returns what it verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from errors import AuditIntegrityError

__all__ = [
    "COSIGNATURE",
    "ED25519",
    "Cosignature",
    "Note",
    "NoteSignature",
    "VerifierKey",
    "cosign",
    "sign_note",
    "valid_key_name",
    "verify_cosignature",
    "verify_note",
]

ED25519 = 0x01
COSIGNATURE = 0x04
DASH = "\u2014 "
# The spec asks verifiers to accept at least 16; more than this is refused as malformed.
MAX_SIGNATURES = 64


def _malformed(what: str) -> AuditIntegrityError:
    return AuditIntegrityError(f"malformed {what}", code="malformed_note")


def valid_key_name(name: str) -> bool:
    """Non-empty, with no Unicode space and no plus sign."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _key_id(name: str, kind: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([kind]) + public_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A public key with its name and signature type, as a note verifier knows it."""

    name: str
    kind: int
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise _malformed("key name")
        if self.kind not in (ED25519, COSIGNATURE) or len(self.public_key) != 32:
            raise _malformed("verifier key")

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.kind, self.public_key)

    def encode(self) -> str:
        material = base64.b64encode(bytes([self.kind]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse ``name+hash+keydata``; raises unless the hash is the key's own."""
        try:
            name, key_hex, material = text.strip().split("+", 2)
            raw = base64.b64decode(material, validate=True)
            key = cls(name, raw[0], raw[1:])
            claimed = bytes.fromhex(key_hex)
        except (ValueError, IndexError, binascii.Error):
            raise _malformed("verifier key") from None
        if len(key_hex) != 8 or not hmac.compare_digest(claimed, key.key_id):
            raise _malformed("verifier key")
        return key

    @classmethod
    def of(cls, name: str, private: Ed25519PrivateKey, kind: int = ED25519) -> VerifierKey:
        return cls(name, kind, private.public_key().public_bytes_raw())


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name, its 4-byte ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    @classmethod
    def parse(cls, data: str) -> Note:
        """Split a signed note into its text and signature lines (nothing is verified)."""
        if any(ord(c) < 0x20 and c != "\n" for c in data) or not data.endswith("\n"):
            raise _malformed("note")
        split = data.rfind("\n\n")
        if split < 0:
            raise _malformed("note")
        text, block = data[: split + 1], data[split + 2 :]
        lines = block.split("\n")[:-1]
        if not lines or len(lines) > MAX_SIGNATURES:
            raise _malformed("note")
        return cls(text, tuple(_signature_line(line) for line in lines))

    def with_signatures(self, extra: Sequence[NoteSignature]) -> Note:
        """The note with ``extra`` lines added, each line once."""
        seen = list(self.signatures)
        seen += [s for s in extra if s not in seen]
        return Note(self.text, tuple(seen))


def _signature_line(line: str) -> NoteSignature:
    if not line.startswith(DASH):
        raise _malformed("signature line")
    name, _, encoded = line[len(DASH) :].partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise _malformed("signature line") from None
    if not valid_key_name(name) or len(raw) < 5:
        raise _malformed("signature line")
    return NoteSignature(name, raw[:4], raw[4:])


def sign_note(text: str, name: str, private: Ed25519PrivateKey) -> NoteSignature:
    """An Ed25519 (type 0x01) signature of ``text`` by the key called ``name``."""
    if not text.endswith("\n"):
        raise _malformed("note text")
    key = VerifierKey.of(name, private)
    return NoteSignature(name, key.key_id, private.sign(text.encode("utf-8")))


def _matches(signature: NoteSignature, key: VerifierKey) -> bool:
    return signature.name == key.name and hmac.compare_digest(signature.key_id, key.key_id)


def verify_note(note: Note, keys: Sequence[VerifierKey]) -> list[VerifierKey]:
    """The known Ed25519 keys that signed ``note``. Unknown signatures are ignored; a known key
    whose signature fails, or no known signature at all, raises."""
    good: list[VerifierKey] = []
    for key in keys:
        if key.kind != ED25519:
            continue
        for signature in note.signatures:
            if not _matches(signature, key):
                continue
            try:
                public = Ed25519PublicKey.from_public_bytes(key.public_key)
                public.verify(signature.signature, note.text.encode("utf-8"))
            except (InvalidSignature, ValueError):
                raise AuditIntegrityError(
                    f"the note's signature by {key.name} does not verify", code="bad_signature"
                ) from None
            good.append(key)
    if not good:
        raise AuditIntegrityError("the note has no signature by a known key", code="bad_signature")
    return good


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified witness cosignature: who, and the time it claims."""

    witness: str
    timestamp: int


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode("utf-8")


def cosign(text: str, name: str, private: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """A ``cosignature/v1`` of the checkpoint ``text`` by the witness key ``name``."""
    if not 0 <= timestamp < 2**63:
        raise _malformed("cosignature time")
    key = VerifierKey.of(name, private, COSIGNATURE)
    signature = private.sign(_cosigned_message(text, timestamp))
    return NoteSignature(name, key.key_id, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(text: str, signature: NoteSignature, key: VerifierKey) -> Cosignature:
    """Raises unless ``signature`` is ``key``'s valid cosignature of the checkpoint ``text``."""
    if key.kind != COSIGNATURE or not _matches(signature, key) or len(signature.signature) != 72:
        raise AuditIntegrityError(f"not a cosignature by {key.name}", code="bad_cosignature")
    (timestamp,) = struct.unpack(">Q", signature.signature[:8])
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(
            signature.signature[8:], _cosigned_message(text, timestamp)
        )
    except (InvalidSignature, ValueError):
        raise AuditIntegrityError(
            f"the cosignature by {key.name} does not verify", code="bad_cosignature"
        ) from None
    return Cosignature(key.name, timestamp)
