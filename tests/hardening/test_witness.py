"""A real `tiers serve` and a real `tiers witness serve` on 127.0.0.1: the witness cosigns the
log as it grows, and refuses the history an insider forged, even signed with the log's own key.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit import verify_bundle
from audit.note import Note, VerifierKey, verify_cosignature
from tests.conftest import Database
from tests.forgery import delete_checkpoints, rewrite
from tests.hardening.service import free_port, launch, request, start, stop, tiers
from tiers.storage.checkpoint_store import FILE_NAME

pytestmark = pytest.mark.slow


def _witness(home: Path, log_key: str, port: int) -> subprocess.Popen[bytes]:
    arguments = ["witness", "serve", "--home", str(home), "--log-key", log_key]
    return launch([*arguments, "--port", str(port)], None, port, "/")


def _readiness(port: int) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/readyz")
    body = json.loads(connection.getresponse().read())
    assert isinstance(body, dict)
    return body


def _until(check: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _conflicts(home: Path) -> list[str]:
    path = home / "conflicts.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_witness_cosigns_the_log_and_refuses_a_forged_history(
    database: Database, tmp_path: Path
) -> None:
    witness_home = tmp_path / "witness"
    env = {
        **os.environ,
        **database.env(),
        "TIERS_ARGON2_PROFILE": "test",
        "TIERS_AUDIT_CHECKPOINT_SECONDS": "0.2",
        "TIERS_WITNESS_TIMEOUT_SECONDS": "5",
    }
    witness_key = tiers(
        "witness", "init", "--home", str(witness_home), "--name", "cnil.test/w1", env=env
    ).strip()
    assert 0x04 == VerifierKey.parse(witness_key).kind
    tiers("init", env=env)
    log_key = tiers("audit", "log-key", env=env).strip()
    witness_port, port = free_port(), free_port()
    witness = _witness(witness_home, log_key, witness_port)
    env["TIERS_WITNESSES"] = f"http://127.0.0.1:{witness_port} {witness_key}"
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    auditor = tiers("client", "add", "dpo-app", "--role", "auditor", env=env).strip().split()[-1]
    server = start(env, port)
    try:
        _until(lambda: _readiness(port).get("witnesses", {}).get("reached"), "the quorum")
        status, note = request(port, "GET", "/v1/audit/checkpoint", auditor)
        assert 200 == status and isinstance(note, bytes)
        parsed = Note.parse(note.decode())
        cosigned = [s for s in parsed.signatures if s.name == "cnil.test/w1"]
        key = VerifierKey.parse(witness_key)
        assert verify_cosignature(parsed.text, cosigned[0], key).witness == "cnil.test/w1"
        exported = tmp_path / "log.json"
        request(port, "GET", "/v1/audit/verify", auditor)
    finally:
        stop(server)
    tiers("audit", "export", "-o", str(exported), "--purpose", "witness check", env=env)
    assert verify_bundle(exported.read_bytes(), witnesses=[key]).entries > 0
    assert [] == _conflicts(witness_home)

    # The insider rewrites the log, removes the store and has `tiers init` adopt the forgery:
    # the log's own key signs it, but the witness holds the real history.
    rewrite(database, start=2)
    delete_checkpoints(database)
    (database.home / "checkpoints" / FILE_NAME).unlink()
    tiers("init", env=env)
    tiers("domain", "add", "fnac", "--role", "partner", env=env)  # the forged log grows
    assert _conflicts(witness_home), "the witness did not record the forged history"
    verified = subprocess.run(
        [str(Path(sys.executable).with_name("tiers")), "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert 1 == verified.returncode
    assert "[unwitnessed]" in verified.stderr and "0 of 1 cosigned" in verified.stderr
    tiers("audit", "export", "-o", str(exported), "--purpose", "witness check", env=env)
    with pytest.raises(Exception, match="cosigned by 0"):
        verify_bundle(exported.read_bytes(), witnesses=[key])
    stop(witness)
