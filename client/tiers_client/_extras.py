"""Blind mode's libraries, an extra of the client (``pip install 'tiers-client[blind]'``):
``pysodium`` (libsodium's ristretto255 group; the library itself is the system's libsodium,
Debian's ``libsodium23``) and ``phonenumbers`` (the phone normaliser). Loaded when first used,
so that a partner who never blinds installs neither."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["MissingExtra", "blind_extra"]


class MissingExtra(RuntimeError):
    """Blind mode is asked for where its libraries are not installed (``needs_blind``)."""

    code = "needs_blind"


@dataclass(frozen=True, slots=True)
class _Blind:
    sodium: Any
    phonenumbers: Any


@cache
def blind_extra() -> _Blind:
    """The two libraries; :class:`MissingExtra` naming the fix when either is missing."""
    try:
        import phonenumbers  # noqa: PLC0415 - an optional extra
        import pysodium  # noqa: PLC0415
    except (ImportError, OSError, ValueError):  # the last two: libsodium is missing
        raise MissingExtra(
            "blind mode needs pysodium (with the system's libsodium) and phonenumbers: "
            "pip install 'tiers-client[blind]'"
        ) from None
    return _Blind(pysodium, phonenumbers)
