from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from errors import ConfigurationError, KeyUnavailable
from keys import DEVELOPMENT_MARKER, MasterKey, write_development_key
from tiers.settings import Settings


def test_development_key_file_is_private_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "home" / "master.key"
    written = write_development_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DEVELOPMENT_MARKER in path.read_text()
    loaded = MasterKey.from_file(path)
    assert loaded.development
    assert written.check_value() == loaded.check_value()


def test_development_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = write_development_key(path)
    with pytest.raises(ConfigurationError):
        write_development_key(path)
    assert first.check_value() == MasterKey.from_file(path).check_value()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_development_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyUnavailable) as caught:
        MasterKey.from_file(path)
    assert caught.value.code == "master_key_permissions"


@pytest.mark.parametrize(
    "text",
    [
        "not base64 at all!",
        base64.b64encode(b"short").decode(),
        base64.b64encode(b"x" * 33).decode(),
    ],
)
def test_bad_master_key_text_is_refused_without_echo(text: str) -> None:
    with pytest.raises(KeyUnavailable) as caught:
        MasterKey.from_base64(text)
    assert text not in str(caught.value)


def test_missing_key_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable) as caught:
        MasterKey.from_file(tmp_path / "none.key")
    assert caught.value.code == "no_master_key"


def test_check_value_identifies_without_revealing() -> None:
    material = os.urandom(32)
    key = MasterKey(material, source="test")
    other = MasterKey(os.urandom(32), source="test")
    assert key.matches(key.check_value())
    assert not other.matches(key.check_value())
    assert material.hex() not in key.check_value()
    assert key.check_value().startswith("hmac-sha256:")


def test_settings_refuse_a_development_key_in_production(tmp_path: Path) -> None:
    write_development_key(tmp_path / "master.key")
    with pytest.raises(ConfigurationError) as caught:
        Settings(home=tmp_path, env="production").load_master_key()
    assert caught.value.code == "development_key_in_production"


def test_settings_refuse_two_master_key_sources(tmp_path: Path) -> None:
    encoded = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(home=tmp_path, master_key=encoded, master_key_file=tmp_path / "k")
    with pytest.raises(ConfigurationError):
        settings.load_master_key()


def test_settings_take_the_key_from_the_environment_value(tmp_path: Path) -> None:
    material = os.urandom(32)
    settings = Settings(home=tmp_path, master_key=base64.b64encode(material).decode())
    assert MasterKey(material, source="x").check_value() == settings.load_master_key().check_value()
    assert base64.b64encode(material).decode() not in repr(settings)
