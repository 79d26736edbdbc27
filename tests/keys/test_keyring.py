from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errors import KeyDestroyed, KeyStateError, UnknownKeyVersion
from keys import Keyring, KeyState, new_key_material

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ring() -> Keyring:
    return Keyring.create(owner="casino", purpose="pseudonym", material=new_key_material(), now=T0)


def test_rotation_adds_an_active_version_and_keeps_the_old_one_verify_only() -> None:
    first = ring()
    second = first.rotated(new_key_material(), T0 + timedelta(days=1))
    assert first.active_version == 1
    assert second.active_version == 2
    assert second.versions[1].state == KeyState.VERIFY_ONLY
    assert first.key(1).mac(b"x") == second.key(1).mac(b"x")
    assert second.key(1).mac(b"x") != second.key(2).mac(b"x")


@given(rotations=st.integers(min_value=0, max_value=6), destroy=st.data())
def test_keyring_always_has_exactly_one_active_version(
    rotations: int, destroy: st.DataObject
) -> None:
    keyring = ring()
    for _ in range(rotations):
        keyring = keyring.rotated(new_key_material(), T0)
    victims = destroy.draw(st.sets(st.integers(min_value=1, max_value=rotations + 1)))
    for version in sorted(victims):
        if version == keyring.active_version:
            with pytest.raises(KeyStateError):
                keyring.destroyed(version, T0)
        else:
            keyring = keyring.destroyed(version, T0)
    states = [v.state for v in keyring]
    assert states.count(KeyState.ACTIVE) == 1
    assert rotations + 1 == keyring.active_version


def test_destroyed_version_cannot_be_used_or_destroyed_again() -> None:
    keyring = ring().rotated(new_key_material(), T0).destroyed(1, T0)
    with pytest.raises(KeyDestroyed):
        keyring.key(1)
    with pytest.raises(KeyDestroyed):
        keyring.destroyed(1, T0)
    assert 1 not in keyring.materials


def test_active_version_cannot_be_destroyed() -> None:
    with pytest.raises(KeyStateError) as caught:
        ring().destroyed(1, T0)
    assert caught.value.code == "active_key"


def test_unknown_version_is_refused() -> None:
    with pytest.raises(UnknownKeyVersion):
        ring().key(7)
    with pytest.raises(UnknownKeyVersion):
        ring().destroyed(7, T0)


def test_repr_of_keys_and_keyrings_shows_no_material() -> None:
    material = new_key_material()
    keyring = Keyring.create(owner="casino", purpose="pseudonym", material=material, now=T0)
    for text in (repr(keyring), repr(keyring.active), str(keyring.active)):
        assert material.hex() not in text
        assert "redacted" in text
