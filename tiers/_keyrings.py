"""Keyrings as stored: load, create, rotate and destroy wrapped keys in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from errors import NotFound, NotInitialised
from keys import (
    KeyEncryptionKey,
    KeyIdentity,
    Keyring,
    KeyState,
    KeyVersion,
    Secret,
    new_key_material,
    unwrap_key,
    wrap_key,
)
from keys.rows import RowSealer
from tiers import sealing
from tiers.storage import keystore

__all__ = [
    "BASE_PURPOSE",
    "PSEUDONYM_PURPOSE",
    "SERVICE_OWNER",
    "SIGNING_PURPOSE",
    "create_keyring",
    "destroy_version",
    "load_keyring",
    "rotate_keyring",
]

SERVICE_OWNER = "_service"
BASE_PURPOSE = "base"
PSEUDONYM_PURPOSE = "pseudonym"
SIGNING_PURPOSE = "signing"


def load_keyring(
    connection: Connection, master: KeyEncryptionKey, *, owner: str, purpose: str
) -> Keyring:
    """Unwrap every live version of ``owner``'s ``purpose`` key.

    Raises :class:`NotFound` (no such keyring; :class:`NotInitialised` for the base key),
    :class:`~errors.RowTampered` (its versions or states were changed outside the
    service) and :class:`~errors.KeyUnavailable` (wrong master key or damaged record).
    """
    records = keystore.load(connection, owner=owner, purpose=purpose)
    if not records:
        if owner == SERVICE_OWNER:
            raise NotInitialised(f"no {purpose} key; run `tiers init`")
        raise NotFound(f"no {purpose} key for {owner}")
    sealing.check_keyring(connection, RowSealer(master), owner=owner, purpose=purpose)
    versions: dict[int, KeyVersion] = {}
    materials: dict[int, Secret] = {}
    for record in records:
        state = KeyState(record.state)
        versions[record.version] = KeyVersion(
            owner, purpose, record.version, state, record.created_at, record.state_changed_at
        )
        if state is not KeyState.DESTROYED and record.wrapped is not None:
            identity = KeyIdentity(purpose=purpose, owner=owner, version=record.version)
            materials[record.version] = Secret(
                unwrap_key(master, record.wrapped, identity), label=f"{purpose} key"
            )
    return Keyring(owner, purpose, versions, materials)


def create_keyring(
    connection: Connection, master: KeyEncryptionKey, *, owner: str, purpose: str, now: datetime
) -> Keyring:
    """A new keyring with one random active version, stored wrapped."""
    material = new_key_material()
    identity = KeyIdentity(purpose=purpose, owner=owner, version=1)
    keystore.insert_version(
        connection,
        owner=owner,
        purpose=purpose,
        version=1,
        state=KeyState.ACTIVE.value,
        wrapped=wrap_key(master, material, identity),
        now=now,
    )
    sealing.seal_keyring(connection, RowSealer(master), owner=owner, purpose=purpose)
    return Keyring.create(owner=owner, purpose=purpose, material=material, now=now)


def rotate_keyring(
    connection: Connection, master: KeyEncryptionKey, keyring: Keyring, *, now: datetime
) -> Keyring:
    """Store a new active version; the old active one becomes verify-only."""
    old = keyring.active_version
    material = new_key_material()
    rotated = keyring.rotated(material, now)
    new = rotated.active_version
    identity = KeyIdentity(purpose=keyring.purpose, owner=keyring.owner, version=new)
    keystore.set_state(
        connection,
        owner=keyring.owner,
        purpose=keyring.purpose,
        version=old,
        state=KeyState.VERIFY_ONLY.value,
        now=now,
    )
    keystore.insert_version(
        connection,
        owner=keyring.owner,
        purpose=keyring.purpose,
        version=new,
        state=KeyState.ACTIVE.value,
        wrapped=wrap_key(master, material, identity),
        now=now,
    )
    sealing.seal_keyring(
        connection, RowSealer(master), owner=keyring.owner, purpose=keyring.purpose
    )
    return rotated


def destroy_version(
    connection: Connection,
    master: KeyEncryptionKey,
    keyring: Keyring,
    *,
    version: int,
    now: datetime,
) -> Keyring:
    """Erase the wrapped material of ``version`` for good (see :meth:`Keyring.destroyed`)."""
    shredded = keyring.destroyed(version, now)
    keystore.set_state(
        connection,
        owner=keyring.owner,
        purpose=keyring.purpose,
        version=version,
        state=KeyState.DESTROYED.value,
        now=now,
        erase=True,
    )
    sealing.seal_keyring(
        connection, RowSealer(master), owner=keyring.owner, purpose=keyring.purpose
    )
    return shredded
