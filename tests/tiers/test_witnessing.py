"""The service's side of witnessing, against real HTTP servers on 127.0.0.1: a witness that is
down, slow, answers garbage or cosigns with another key is reported, bounded in time, and
nothing the service did is lost; bad settings are refused with their code."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.note import COSIGNATURE, VerifierKey, cosign
from tests.conftest import ACCESS, Database
from tests.hardening.service import free_port
from tiers.admin import add_domain, initialise
from tiers.deployment import Deployment
from tiers.errors import ConfigurationError
from tiers.settings import Settings
from tiers.witnessing import configured

WITNESS = Ed25519PrivateKey.generate()
KEY = VerifierKey.of("test/w", WITNESS, COSIGNATURE)


class _Witness(BaseHTTPRequestHandler):
    """A witness that misbehaves as ``server.mode`` says."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length).decode()
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "slow":
            time.sleep(3)
        if mode == "garbage":
            answer = b"\x00\xffnot a signature line\n"
        elif mode == "stranger":
            text = body.split("\n\n", 1)[1].rsplit("\n\n", 1)[0] + "\n"
            line = cosign(text, "test/w", Ed25519PrivateKey.generate(), 1)
            answer = line.line().encode()
        else:
            answer = b"refused\n"
        self.send_response(200 if mode != "refuses" else 403)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def misbehaving() -> Iterator[tuple[ThreadingHTTPServer, int]]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Witness)
    # The slow witness answers after the client gave up (its timeout): no traceback for that.
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, port
    server.shutdown()
    server.server_close()


def _deployment(database: Database, url: str, timeout: float = 5) -> Deployment:
    settings = database.settings(witnesses=f"{url} {KEY.encode()}", witness_timeout_seconds=timeout)
    initialise(settings, access=ACCESS)
    return Deployment.open(settings)


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("garbage", "garbage"),
        ("stranger", "no_valid_cosignature"),
        ("refuses", "http_403"),
        ("slow", "unreachable"),
    ],
)
def test_a_misbehaving_witness_is_reported_and_nothing_is_lost(
    database: Database,
    misbehaving: tuple[ThreadingHTTPServer, int],
    mode: str,
    code: str,
) -> None:
    server, port = misbehaving
    server.mode = mode  # type: ignore[attr-defined]
    deployment = _deployment(database, f"http://127.0.0.1:{port}", timeout=1)
    try:
        add_domain(deployment, access=ACCESS, name="casino", role="partner")
        deployment.sign_pending()
        started = time.monotonic()
        (answer,) = deployment.witness_newest()
        assert time.monotonic() - started < 2.5  # bounded by the timeout, not the witness
        assert (False, code) == (answer.cosigned, answer.code)
        status = deployment.witness_status()
        assert (1, 1, (), False) == (
            status.witnesses,
            status.quorum,
            status.cosigned_by,
            status.reached,
        )
        assert deployment.log_fault is None  # the log goes on; the status says what is missing
        assert "casino" in [e.domains[0] for e in database.audit_entries() if e.domains]
    finally:
        deployment.close()


def test_a_witness_that_is_down_is_reported(database: Database) -> None:
    deployment = _deployment(database, f"http://127.0.0.1:{free_port()}")
    try:
        (answer,) = deployment.witness_newest()
        assert "unreachable" == answer.code
    finally:
        deployment.close()


@pytest.mark.parametrize(
    ("witnesses", "quorum"),
    [
        ("127.0.0.1:1 " + KEY.encode(), None),  # no scheme
        ("http://127.0.0.1:1", None),  # no key
        ("http://127.0.0.1:1 not-a-key", None),
        ("http://127.0.0.1:1 " + replace(KEY, kind=0x01).encode(), None),  # not a cosigner
        ("http://127.0.0.1:1 " + KEY.encode(), 2),  # quorum above the witnesses
    ],
)
def test_bad_witness_settings_are_refused(
    tmp_path: Path, witnesses: str, quorum: int | None
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        configured(Settings(home=tmp_path, witnesses=witnesses, witness_quorum=quorum))
    assert "bad_witnesses" == refused.value.code
    assert "127.0.0.1" not in refused.value.message  # the setting's value is not echoed
