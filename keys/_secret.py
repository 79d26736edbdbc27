"""A container for secret bytes that never shows them in a repr, str or log line."""

from __future__ import annotations

import hmac
from typing import NoReturn

__all__ = ["Secret"]


class Secret:
    """Secret bytes with a redacted ``repr``.

    The bytes are kept in a ``bytearray`` so that :meth:`zeroise` can overwrite them. Zeroising is
    best effort only: Python may have copied the value elsewhere (the ``bytes`` it was built from,
    hash objects prepared from it), and nothing here can reach those copies.
    """

    __slots__ = ("_label", "_value")

    def __init__(self, value: bytes | bytearray, *, label: str = "secret") -> None:
        self._value = bytearray(value)
        self._label = label

    def reveal(self) -> bytes:
        """The secret bytes. Call only where the key is used, never to print or store them."""
        return bytes(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<Secret {self._label} ({len(self._value)} bytes, redacted)>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(bytes(self._value), bytes(other._value))

    def __hash__(self) -> int:
        raise TypeError("Secret is not hashable")

    def __reduce__(self) -> NoReturn:
        # Pickling would write the key to wherever the pickle goes.
        raise TypeError("Secret cannot be pickled")

    def zeroise(self) -> None:
        """Overwrite the held bytes with zeros (best effort, see the class docstring)."""
        for i in range(len(self._value)):
            self._value[i] = 0
