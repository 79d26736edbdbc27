"""The master key in a PKCS#11 token from the command line: init, status, and rotations from a
file to the token, between keys of the token, and back to a file (SoftHSM2)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import softhsm
from tests.conftest import Cli, Database, hsm
from tests.softhsm import PIN, SoftHsm

CARD = "12345678"


def _pseudonym(cli: Cli, **env: str) -> str:
    result = cli("pseudonymise", "--domain", "casino", "--kind", "card", CARD, **env)
    assert 0 == result.exit_code, result.stderr
    return result.stdout.strip()


@pytest.mark.master_key_file
def test_a_file_key_moves_into_the_token_between_token_keys_and_back(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    token = hsm()
    first, second = softhsm.new_label(), softhsm.new_label()
    try:
        before = _pseudonym(initialised_cli)
        in_token = token.env(first)
        # The token's settings beside the file key's: the backend switches after the move.
        reach = {k: v for k, v in in_token.items() if k != "TIERS_MASTER_KEY_BACKEND"}
        moved = initialised_cli("master-key", "rotate", "--to-pkcs11", first, **reach)
        assert 0 == moved.exit_code, moved.stderr
        assert f"TIERS_PKCS11_KEY_LABEL={first}" in moved.stdout
        assert ["AES", "GENERIC_SECRET"] == token.key_types(first)
        # The file no longer opens the database; the token's key does, with the same answers.
        assert initialised_cli("audit", "verify").stderr.strip().endswith("[wrong_master_key]")
        assert before == _pseudonym(initialised_cli, **in_token)
        assert 0 == initialised_cli("audit", "verify", **in_token).exit_code

        between = initialised_cli("master-key", "rotate", "--to-pkcs11", second, **in_token)
        assert 0 == between.exit_code, between.stderr
        assert before == _pseudonym(initialised_cli, **token.env(second))
        refused = initialised_cli("audit", "verify", **in_token)
        assert refused.stderr.strip().endswith("[wrong_master_key]")

        back = tmp_path / "back.key"
        back.write_text(base64.b64encode(os.urandom(32)).decode() + "\n", encoding="utf-8")
        back.chmod(0o600)
        home = initialised_cli(
            "master-key", "rotate", "--new-key-file", str(back), **token.env(second)
        )
        assert 0 == home.exit_code, home.stderr
        assert before == _pseudonym(initialised_cli, TIERS_MASTER_KEY_FILE=str(back))
    finally:
        token.destroy(first)
        token.destroy(second)
    rotations = [e for e in database.audit_entries() if e.action == "master_key_rotate"]
    assert [("file", "pkcs11"), ("pkcs11", "pkcs11"), ("pkcs11", "file")] == [
        (e.detail["from"], e.detail["to"]) for e in rotations
    ]


def test_init_makes_the_key_in_the_token_and_status_shows_its_attributes(
    cli: Cli, database: Database
) -> None:
    token = hsm()
    label = database.hsm_key or softhsm.new_label()
    env = token.env(label)
    try:
        assert 0 == cli("init", **env).exit_code
        assert not (database.home / "master.key").exists()  # no key file was made
        status = cli("master-key", "status", **env)
        assert 0 == status.exit_code, status.stderr
        lines = dict(line.split(": ", 1) for line in status.stdout.splitlines())
        assert "pkcs11" == lines["backend"]
        assert label == lines["key label"]
        assert "AES-256" == lines["wrapping key type"]
        assert "no" == lines["wrapping key CKA_EXTRACTABLE"] == lines["MAC key CKA_EXTRACTABLE"]
        assert "yes" == lines["wrapping key CKA_NEVER_EXTRACTABLE"]
        assert lines["check value"].startswith("hmac-sha256:")
        assert PIN not in status.stdout + status.stderr
        assert "master_key_status" in [e.action for e in database.audit_entries()]
    finally:
        if database.hsm_key is None:
            token.destroy(label)


def test_rotate_takes_exactly_one_new_key(initialised_cli: Cli) -> None:
    neither = initialised_cli("master-key", "rotate")
    assert 1 == neither.exit_code
    assert neither.stderr.strip().endswith("[bad_option]")


@pytest.mark.master_key_file  # none of the token's settings in the environment
def test_settings_for_the_token_are_named_when_missing(cli: Cli) -> None:
    result = cli("init", TIERS_MASTER_KEY_BACKEND="pkcs11")
    assert 1 == result.exit_code
    line = result.stderr.strip()
    assert line.endswith("[hsm_not_configured]")
    assert "TIERS_PKCS11_MODULE" in line and "TIERS_PKCS11_TOKEN_LABEL" in line


@pytest.mark.master_key_file  # a token of its own: this process's login must not answer for it
def test_a_wrong_pin_is_refused_logged_and_never_echoed(database: Database, tmp_path: Path) -> None:
    hsm()  # skips (fails in CI) without SoftHSM2
    token = SoftHsm.create(tmp_path / "hsm", label="pin")
    env = {
        **os.environ,
        **database.env(),
        **token.env("pin-master"),
        "SOFTHSM2_CONF": str(token.conf),
        "TIERS_PURPOSE": "test suite",
    }
    tiers = str(Path(sys.executable).with_name("tiers"))
    subprocess.run([tiers, "init"], env=env, check=True, capture_output=True)
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("9999-0000\n", encoding="utf-8")
    wrong.chmod(0o600)
    refused = subprocess.run(
        [tiers, "domain", "list"],
        env={**env, "TIERS_PKCS11_PIN_FILE": str(wrong)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert 1 == refused.returncode
    assert refused.stderr.strip().endswith("[hsm_pin_incorrect]")
    assert "9999-0000" not in refused.stdout + refused.stderr
    assert PIN not in refused.stdout + refused.stderr
    last = database.audit_entries()[-1]
    assert ("domain_list", "error", "hsm_pin_incorrect") == (last.action, last.outcome, last.code)
    assert b"9999-0000" not in database.stored_bytes()
