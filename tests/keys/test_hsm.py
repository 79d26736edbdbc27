"""The master key in a real PKCS#11 token (SoftHSM2): generated there, used there, never out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from errors import ConfigurationError, KeyUnavailable
from keys import KeyIdentity, MasterKey, new_key_material, unwrap_key, wrap_key
from keys.hsm import Pkcs11Config, Pkcs11MasterKey, read_pin
from keys.rows import RowSealer
from tests import softhsm
from tests.conftest import hsm
from tests.softhsm import PIN, SoftHsm

IDENTITY = KeyIdentity(purpose="pseudonym", owner="casino", version=1)


def config(token: SoftHsm, label: str, **changes: object) -> Pkcs11Config:
    values: dict[str, object] = {
        "module": token.module,
        "token_label": token.label,
        "key_label": label,
        "pin": read_pin(token.pin_file()),
        "timeout_seconds": 5.0,
        **changes,
    }
    return Pkcs11Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def label() -> Iterator[str]:
    token, made = hsm(), softhsm.new_label()
    yield made
    token.destroy(made)


@pytest.fixture
def master(label: str) -> Pkcs11MasterKey:
    return Pkcs11MasterKey.open(config(hsm(), label), create=True)


def test_the_key_pair_is_made_in_the_token_and_cannot_leave_it(
    master: Pkcs11MasterKey, label: str
) -> None:
    assert ["AES", "GENERIC_SECRET"] == hsm().key_types(label)
    with hsm().session() as session:
        wrapper = session.generate_key(KeyType.AES, 256, template={Attribute.WRAP: True})
        for found in session.get_objects({Attribute.LABEL: label}):
            assert found[Attribute.EXTRACTABLE] is False
            assert found[Attribute.SENSITIVE] is True
            assert found[Attribute.NEVER_EXTRACTABLE] is True
            assert found[Attribute.LOCAL] is True  # generated in the token, not imported
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                found[Attribute.VALUE]
            with pytest.raises(pkcs11.exceptions.KeyUnextractable):
                wrapper.wrap_key(found, mechanism=Mechanism.AES_KEY_WRAP)
    described = master.describe()
    assert described["wrapping key CKA_EXTRACTABLE"] is False
    assert described["MAC key CKA_SENSITIVE"] is True
    assert described["key label"] == label
    assert PIN not in repr(described) and PIN not in repr(master)


@given(material=st.binary(min_size=16, max_size=96), owner=st.text(min_size=1, max_size=20))
def test_keys_wrapped_in_the_token_unwrap_there_and_only_under_their_identity(
    master: Pkcs11MasterKey, material: bytes, owner: str
) -> None:
    identity = KeyIdentity(purpose="pseudonym", owner=owner, version=3)
    wrapped = wrap_key(master, material, identity)
    assert material not in wrapped
    assert material == unwrap_key(master, wrapped, identity)
    moved = KeyIdentity(purpose="pseudonym", owner=owner + "x", version=3)
    with pytest.raises(KeyUnavailable) as refused:
        unwrap_key(master, wrapped, moved)
    assert "key_unavailable" == refused.value.code  # the data, not the token


def test_a_damaged_record_or_another_key_is_refused_as_data_not_as_a_token_fault(
    master: Pkcs11MasterKey, label: str
) -> None:
    wrapped = wrap_key(master, new_key_material(), IDENTITY)
    damaged = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(KeyUnavailable) as refused:
        unwrap_key(master, damaged, IDENTITY)
    assert "key_unavailable" == refused.value.code
    in_memory = MasterKey(os.urandom(32), source="test")
    with pytest.raises(KeyUnavailable):
        unwrap_key(in_memory, wrapped, IDENTITY)
    other_label = softhsm.new_label()
    try:
        other = Pkcs11MasterKey.open(config(hsm(), other_label), create=True)
        with pytest.raises(KeyUnavailable):
            unwrap_key(other, wrapped, IDENTITY)
        assert other.check_value() != master.check_value()
    finally:
        hsm().destroy(other_label)
    master.check_available()  # the token itself is fine


def test_macs_are_the_tokens_hmac_under_separated_labels(
    master: Pkcs11MasterKey, label: str
) -> None:
    with hsm().session() as session:
        key = session.get_key(key_type=KeyType.GENERIC_SECRET, label=label)
        expected = bytes(key.sign(b"message", mechanism=Mechanism.SHA256_HMAC))
    assert expected == master.mac(b"message")
    assert master.derived(b"console csrf") != master.derived(b"other")
    sealer = RowSealer(master)
    seal = sealer.seal("client", ["casino-app", "partner", 1])
    assert sealer.holds("client", ["casino-app", "partner", 1], seal)
    assert not sealer.holds("client", ["casino-app", "admin", 1], seal)
    reopened = Pkcs11MasterKey.open(config(hsm(), label))
    assert seal == RowSealer(reopened).seal("client", ["casino-app", "partner", 1])
    assert master.check_value() == reopened.check_value()


def test_a_missing_key_pair_is_not_made_without_create(label: str) -> None:
    with pytest.raises(KeyUnavailable) as refused:
        Pkcs11MasterKey.open(config(hsm(), label))
    assert "hsm_key_missing" == refused.value.code
    assert [] == hsm().key_types(label)


def test_an_exportable_key_under_the_label_is_refused(label: str) -> None:
    with hsm().session() as session:
        template = {Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False}
        session.generate_key(KeyType.AES, 256, label=label, store=True, template=template)
        session.generate_key(KeyType.GENERIC_SECRET, 256, label=label, store=True)
    with pytest.raises(KeyUnavailable) as refused:
        Pkcs11MasterKey.open(config(hsm(), label))
    assert "hsm_key_unsafe" == refused.value.code


def test_a_busy_token_answers_unavailable_within_the_timeout(label: str) -> None:
    quick = Pkcs11MasterKey.open(config(hsm(), label, timeout_seconds=0.2), create=True)
    token = quick._token  # the one session of this process on the token, held by a slow call
    holding = token._lock
    assert holding.acquire()
    try:
        with pytest.raises(KeyUnavailable) as refused:
            quick.mac(b"x")
        assert "hsm_unavailable" == refused.value.code
    finally:
        holding.release()
    assert 32 == len(quick.mac(b"x"))


_WRONG_PIN = """
import sys
from pathlib import Path
from errors import ConfigurationError, KeyUnavailable
from keys import Secret
from keys.hsm import Pkcs11Config, Pkcs11MasterKey, pin_refusals
config = Pkcs11Config(Path(sys.argv[1]), sys.argv[2], "absent", Secret(b"0000-0000"))
codes = []
for _ in range(2):
    try:
        Pkcs11MasterKey.open(config)
    except KeyUnavailable as error:
        codes.append(error.code)
        print(error.message)
print(",".join(codes), pin_refusals())
"""


def test_a_wrong_pin_is_refused_without_echo_counted_and_not_tried_again(
    tmp_path: Path,
) -> None:
    hsm()  # skips (fails in CI) without SoftHSM2
    token = SoftHsm.create(tmp_path / "token", label="pin-test")
    process = subprocess.run(
        [sys.executable, "-c", _WRONG_PIN, str(token.module), token.label],
        env={**os.environ, "SOFTHSM2_CONF": str(token.conf)},
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = process.stdout.splitlines()
    assert "hsm_pin_incorrect,hsm_pin_incorrect 1" == lines[-1]  # one refusal, not two tries
    assert "0000-0000" not in process.stdout + process.stderr
    assert "refused the PIN" in lines[0]


def test_a_pin_file_readable_by_others_or_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as missing:
        read_pin(tmp_path / "absent")
    assert "hsm_not_configured" == missing.value.code
    pin = tmp_path / "pin"
    pin.write_text("1234\n", encoding="utf-8")
    pin.chmod(0o644)
    with pytest.raises(KeyUnavailable) as refused:
        read_pin(pin)
    assert "master_key_permissions" == refused.value.code
    assert "1234" not in refused.value.message


def test_secret_keys_of_the_token_are_found_only_by_their_class(label: str) -> None:
    """A data object under the label does not stand in for the key pair."""
    with hsm().session() as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.LABEL: label,
                Attribute.TOKEN: True,
                Attribute.VALUE: b"not a key",
            }
        )
    with pytest.raises(KeyUnavailable) as refused:
        Pkcs11MasterKey.open(config(hsm(), label))
    assert "hsm_key_missing" == refused.value.code
    with hsm().session() as session:
        for found in session.get_objects({Attribute.LABEL: label}):
            found.destroy()
