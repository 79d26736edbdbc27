"""Seals on the rows that grant power: a MAC under a key derived from the master key.

A client's role, domain, state and credential, and the versions and states of a keyring, are
rows a database writer could edit to give a client more than it was granted, or to bring an
old key version back into use. Each such row (or set of rows) carries a seal,
``hmac-sha256:<hex>``, an HMAC-SHA-256 of its fields under a key derived from the master key
with the label ``tiers rows of power v1`` (by HKDF-SHA-256, RFC 5869, for a key held in memory;
inside the token, under its MAC key and after the label, for a key in an HSM). Without the
master key, a seal cannot be made for an edited row; the service refuses to act on a row whose
seal fails.

A seal binds what the row says, not when: a writer who kept an older row with its seal can put
both back (a rollback). SECURITY.md says what detects that.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Sequence

from keys._encoding import length_prefixed
from keys.master import KeyEncryptionKey

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
    """Seals and checks rows of power under the key derived from one master key.

    A seal that held once for exact bytes holds for them again (the MAC is deterministic), so
    the last :data:`HELD` that held are remembered and not computed again: a client's row,
    checked at each of its calls, costs a token operation once, not per call.
    """

    __slots__ = ("_held", "_lock", "_mac")

    HELD = 4096

    def __init__(self, master: KeyEncryptionKey) -> None:
        self._mac = master.keyed_mac(_LABEL)
        self._held: dict[tuple[bytes, str], None] = {}
        self._lock = threading.Lock()

    def seal(self, kind: str, fields: Sequence[Field]) -> str:
        """The seal of a row of ``kind`` (``client``, ``keyring``) holding ``fields``."""
        return PREFIX + self._mac(_encode(kind, fields)).hex()

    def holds(self, kind: str, fields: Sequence[Field], seal: str | None) -> bool:
        """Whether ``seal`` is the seal of these fields (False for a missing seal)."""
        if seal is None:
            return False
        message = _encode(kind, fields)
        if (message, seal) in self._held:
            return True
        if not hmac.compare_digest(PREFIX + self._mac(message).hex(), seal):
            return False
        with self._lock:
            if len(self._held) >= self.HELD:
                self._held.clear()
            self._held[message, seal] = None
        return True

    def __repr__(self) -> str:
        return "<RowSealer (key redacted)>"

    def __reduce__(self) -> tuple[()]:
        raise TypeError("a row sealer cannot be pickled")
