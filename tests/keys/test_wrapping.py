from __future__ import annotations

import base64
import pickle
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errors import KeyUnavailable
from keys import KeyIdentity, MasterKey, Secret, unwrap_key, wrap_key


def master() -> MasterKey:
    return MasterKey(secrets.token_bytes(32), source="test")


identities = st.builds(
    KeyIdentity,
    purpose=st.sampled_from(["base", "pseudonym", "signing"]),
    owner=st.from_regex(r"[a-z][a-z0-9-]{1,31}", fullmatch=True),
    version=st.integers(min_value=1, max_value=10**6),
)


@given(material=st.binary(min_size=32, max_size=32), identity=identities)
def test_wrap_then_unwrap_gives_the_key_back(material: bytes, identity: KeyIdentity) -> None:
    key = master()
    assert material == unwrap_key(key, wrap_key(key, material, identity), identity)


@given(identity=identities, other=identities)
def test_wrapped_key_is_bound_to_its_identity(identity: KeyIdentity, other: KeyIdentity) -> None:
    key = master()
    wrapped = wrap_key(key, b"k" * 32, identity)
    if other.associated_data() == identity.associated_data():
        return
    with pytest.raises(KeyUnavailable):
        unwrap_key(key, wrapped, other)


def test_wrong_master_key_is_refused_not_garbage() -> None:
    identity = KeyIdentity(purpose="pseudonym", owner="casino", version=1)
    wrapped = wrap_key(master(), b"k" * 32, identity)
    with pytest.raises(KeyUnavailable) as caught:
        unwrap_key(master(), wrapped, identity)
    assert "wrong master key or damaged record" in str(caught.value)


@given(
    position=st.integers(min_value=0, max_value=60), flip=st.integers(min_value=1, max_value=255)
)
def test_any_altered_byte_is_refused(position: int, flip: int) -> None:
    key = master()
    identity = KeyIdentity(purpose="base", owner="_service", version=1)
    wrapped = bytearray(wrap_key(key, b"k" * 32, identity))
    wrapped[position % len(wrapped)] ^= flip
    with pytest.raises(KeyUnavailable):
        unwrap_key(key, bytes(wrapped), identity)


def test_each_wrap_uses_a_fresh_nonce() -> None:
    key = master()
    identity = KeyIdentity(purpose="base", owner="_service", version=1)
    assert wrap_key(key, b"k" * 32, identity) != wrap_key(key, b"k" * 32, identity)


def test_secrets_and_master_keys_never_show_their_bytes() -> None:
    material = b"\x01" * 32
    key = MasterKey(material, source="test")
    secret = Secret(material)
    for text in (repr(key), str(key), repr(secret), str(secret), f"{secret}", f"{key!r}"):
        assert material.hex() not in text
        assert base64.b64encode(material).decode() not in text
        assert "redacted" in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_zeroise_overwrites_the_held_bytes() -> None:
    secret = Secret(b"\x07" * 32)
    secret.zeroise()
    assert bytes(32) == secret.reveal()
