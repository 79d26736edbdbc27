"""Seals on the rows that grant power: a MAC under a key derived from the master key.

A client's role, domain, state and credential, and the versions and states of a keyring, are
rows a database writer could edit to give a client more than it was granted, or to bring an
old key version back into use. Each such row (or set of rows) carries a seal,
``hmac-sha256:<hex>``, an HMAC-SHA-256 of its fields under a key derived from the master key
by HKDF-SHA-256 (RFC 5869) with the label ``tiers rows of power v1``. Without the master key, a
seal cannot be made for an edited row; the service refuses to act on a row whose seal fails.

A seal binds what the row says, not when: a writer who kept an older row with its seal can put
both back (a rollback). SECURITY.md says what detects that.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys._encoding import length_prefixed
from keys._secret import Secret
from keys.master import MasterKey

__all__ = ["RowSealer"]

PREFIX = "hmac-sha256:"
_LABEL = b"tiers rows of power v1"

Field = str | int | bool | None


def _encode(kind: str, fields: Sequence[Field]) -> bytes:
    parts = [kind.encode("utf-8")]
    for field in fields:
        if field is None:
            parts.append(b"\x00")
        elif isinstance(field, bool):
            parts.append(b"\x01" + (b"1" if field else b"0"))
        elif isinstance(field, int):
            parts.append(b"\x02" + str(field).encode("ascii"))
        else:
            parts.append(b"\x03" + field.encode("utf-8"))
    return length_prefixed(*parts)


class RowSealer:
    """Seals and checks rows of power under the key derived from one master key."""

    __slots__ = ("_key",)

    def __init__(self, master: MasterKey) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
            master.material()
        )
        self._key = Secret(derived, label="row sealing key")

    def seal(self, kind: str, fields: Sequence[Field]) -> str:
        """The seal of a row of ``kind`` (``client``, ``keyring``) holding ``fields``."""
        tag = hmac.new(self._key.reveal(), _encode(kind, fields), hashlib.sha256).hexdigest()
        return PREFIX + tag

    def holds(self, kind: str, fields: Sequence[Field], seal: str | None) -> bool:
        """Whether ``seal`` is the seal of these fields (False for a missing seal)."""
        return seal is not None and hmac.compare_digest(self.seal(kind, fields), seal)

    def __repr__(self) -> str:
        return "<RowSealer (key redacted)>"

    def __reduce__(self) -> tuple[()]:
        raise TypeError("a row sealer cannot be pickled")
