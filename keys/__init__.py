"""Keyring: the master key, wrapped domain keys, versions, rotation and destruction.

This package holds key *values* and the cryptography that protects them. It does no I/O beyond
reading a master key file; storing wrapped keys is the core's job (``tiers.storage``).
"""

from __future__ import annotations

from keys._encoding import length_prefixed
from keys._hmac import PreparedHmacSha256
from keys._secret import Secret
from keys.keyring import DomainKey, Keyring, KeyState, KeyVersion, new_key_material
from keys.master import DEVELOPMENT_MARKER, KeyEncryptionKey, MasterKey, write_development_key
from keys.wrapping import KeyIdentity, unwrap_key, wrap_key

__all__ = [
    "DEVELOPMENT_MARKER",
    "DomainKey",
    "KeyEncryptionKey",
    "KeyIdentity",
    "KeyState",
    "KeyVersion",
    "Keyring",
    "MasterKey",
    "PreparedHmacSha256",
    "Secret",
    "length_prefixed",
    "new_key_material",
    "unwrap_key",
    "wrap_key",
    "write_development_key",
]
