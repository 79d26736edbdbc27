"""Keyrings: the versions of one owner's key for one purpose, as an immutable value.

A keyring has exactly one ``active`` version (used for new work); older versions are
``verify-only`` (their pseudonyms still parse and resolve) or ``destroyed`` (material gone for
good: crypto-shredding). Transitions return a new keyring; storing it is the caller's job.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from errors import KeyDestroyed, KeyStateError, UnknownKeyVersion
from keys._hmac import PreparedHmacSha256
from keys._secret import Secret

__all__ = ["DomainKey", "KeyState", "KeyVersion", "Keyring", "new_key_material"]

KEY_BYTES = 32


def new_key_material() -> bytes:
    """256 random bits from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


class KeyState(enum.StrEnum):
    ACTIVE = "active"
    VERIFY_ONLY = "verify-only"
    DESTROYED = "destroyed"


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """Metadata of one key version: safe to list, log and return (it holds no material)."""

    owner: str
    purpose: str
    version: int
    state: KeyState
    created_at: datetime
    state_changed_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class DomainKey:
    """One usable key version: its metadata and its secret, with a prepared HMAC."""

    meta: KeyVersion
    secret: Secret
    _mac: PreparedHmacSha256 = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_mac", PreparedHmacSha256(self.secret.reveal()))

    @property
    def version(self) -> int:
        return self.meta.version

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under this key."""
        return self._mac.digest(message)

    def mac_many(self, messages: Iterable[bytes]) -> list[bytes]:
        """:meth:`mac` of each message, in order."""
        return self._mac.digest_many(messages)

    def __repr__(self) -> str:
        m = self.meta
        return f"<DomainKey {m.purpose} {m.owner} v{m.version} {m.state.value} (redacted)>"


@dataclass(frozen=True, slots=True, repr=False, weakref_slot=True)
class Keyring:
    """All versions of one owner's key for one purpose. Immutable."""

    owner: str
    purpose: str
    versions: Mapping[int, KeyVersion]
    materials: Mapping[int, Secret]
    _keys: dict[int, DomainKey] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "versions", MappingProxyType(dict(self.versions)))
        object.__setattr__(self, "materials", MappingProxyType(dict(self.materials)))
        object.__setattr__(self, "_keys", {})
        active = [v for v in self.versions.values() if v.state is KeyState.ACTIVE]
        if len(active) != 1:
            raise KeyStateError(
                f"keyring {self.purpose}/{self.owner} must have exactly one active version, "
                f"has {len(active)}"
            )
        for number, meta in self.versions.items():
            if meta.state is not KeyState.DESTROYED and number not in self.materials:
                raise KeyStateError(
                    f"keyring {self.purpose}/{self.owner} v{number} has no material"
                )

    @classmethod
    def create(cls, *, owner: str, purpose: str, material: bytes, now: datetime) -> Keyring:
        meta = KeyVersion(owner, purpose, 1, KeyState.ACTIVE, now, now)
        return cls(owner, purpose, {1: meta}, {1: Secret(material, label=f"{purpose} key")})

    @property
    def active_version(self) -> int:
        return next(n for n, v in self.versions.items() if v.state is KeyState.ACTIVE)

    @property
    def active(self) -> DomainKey:
        return self.key(self.active_version)

    def key(self, version: int) -> DomainKey:
        """The usable key of ``version``.

        Raises :class:`UnknownKeyVersion` if it never existed, :class:`KeyDestroyed` if it was
        destroyed.
        """
        meta = self.versions.get(version)
        if meta is None:
            raise UnknownKeyVersion(f"{self.owner} has no key version {version}")
        if meta.state is KeyState.DESTROYED:
            raise KeyDestroyed(f"{self.owner} key version {version} was destroyed")
        cached = self._keys.get(version)
        if cached is None:
            cached = DomainKey(meta, self.materials[version])
            self._keys[version] = cached
        return cached

    def __iter__(self) -> Iterator[KeyVersion]:
        return iter(sorted(self.versions.values(), key=lambda v: v.version))

    def rotated(self, material: bytes, now: datetime) -> Keyring:
        """A keyring with a new active version; the previous active one becomes verify-only."""
        number = max(self.versions) + 1
        versions = {
            n: (
                replace(v, state=KeyState.VERIFY_ONLY, state_changed_at=now)
                if v.state is KeyState.ACTIVE
                else v
            )
            for n, v in self.versions.items()
        }
        versions[number] = KeyVersion(self.owner, self.purpose, number, KeyState.ACTIVE, now, now)
        materials = dict(self.materials)
        materials[number] = Secret(material, label=f"{self.purpose} key")
        return Keyring(self.owner, self.purpose, versions, materials)

    def destroyed(self, version: int, now: datetime) -> Keyring:
        """A keyring without the material of ``version``.

        Raises :class:`UnknownKeyVersion`, :class:`KeyDestroyed` (already destroyed) or
        :class:`KeyStateError` (the active version: rotate first).
        """
        meta = self.versions.get(version)
        if meta is None:
            raise UnknownKeyVersion(f"{self.owner} has no key version {version}")
        if meta.state is KeyState.DESTROYED:
            raise KeyDestroyed(f"{self.owner} key version {version} is already destroyed")
        if meta.state is KeyState.ACTIVE:
            raise KeyStateError(
                f"{self.owner} key version {version} is active; rotate before destroying it",
                code="active_key",
            )
        versions = dict(self.versions)
        versions[version] = replace(meta, state=KeyState.DESTROYED, state_changed_at=now)
        materials = {n: s for n, s in self.materials.items() if n != version}
        return Keyring(self.owner, self.purpose, versions, materials)

    def __repr__(self) -> str:
        states = ", ".join(f"v{v.version}:{v.state.value}" for v in self)
        return f"<Keyring {self.purpose}/{self.owner} [{states}] (material redacted)>"
