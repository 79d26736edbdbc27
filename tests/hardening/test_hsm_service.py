"""A real ``tiers serve`` with its master key in a SoftHSM2 token of its own: the same
pseudonyms across a key rotation and a restart; the token taken away mid-run gives 503 and the
service recovers when it is back, without a restart."""

from __future__ import annotations

import http.client
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import Database, hsm
from tests.hardening.service import free_port, request, start, stop, tiers
from tests.softhsm import PIN, SoftHsm

pytestmark = pytest.mark.slow

BODY = {"kind": "card", "values": ["12345678"]}


def _ready(port: int) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/readyz")
    response = connection.getresponse()
    return response.status, response.read()


def _until_ready(port: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while _ready(port)[0] != 200:
        assert time.monotonic() < deadline, "the service did not recover with the token back"
        time.sleep(0.2)


def _pseudonym(port: int, token: str) -> str:
    status, body = request(port, "POST", "/v1/pseudonymise", token, BODY)
    assert 200 == status, body
    assert isinstance(body, dict)
    return str(body["pseudonyms"][0])


@pytest.mark.master_key_file  # the service has a token of its own, not the suite's
def test_a_service_keeps_its_pseudonyms_and_survives_the_token_going_away(
    database: Database, tmp_path: Path
) -> None:
    hsm()  # skips (fails in CI) without SoftHSM2
    token = SoftHsm.create(tmp_path / "hsm", label="service")
    env = {
        **os.environ,
        **database.env(),
        **token.env("service-master"),
        "SOFTHSM2_CONF": str(token.conf),
        "TIERS_ARGON2_PROFILE": "test",
    }
    tiers("init", env=env)
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    keys = [
        tiers("client", "add", name, "--role", "partner", "--domain", "casino", env=env)
        for name in ("casino-app", "casino-batch")
    ]
    first, second = (key.strip().split()[-1] for key in keys)
    port = free_port()
    server = start(env, port)
    before = _pseudonym(port, first)
    tiers("key", "rotate", "casino", env=env)  # another process, on the same token
    rotated = _pseudonym(port, first)
    assert rotated != before and rotated.startswith("casino.v2.")
    stop(server)
    server = start(env, port)
    assert rotated == _pseudonym(port, first)  # restarted: unwrapped again in the token

    away = tmp_path / "hsm" / "tokens-away"
    shutil.move(token.tokens, away)
    status, body = _ready(port)
    assert 503 == status and b"hsm_unavailable" in body
    # A client whose row's seal was never checked needs the token: refused with 503.
    status, refused = request(port, "POST", "/v1/pseudonymise", second, BODY)
    assert 503 == status
    assert isinstance(refused, dict) and "hsm_unavailable" == refused["error"]["code"]
    shutil.move(away, token.tokens)
    _until_ready(port)
    assert rotated == _pseudonym(port, second)
    assert rotated == _pseudonym(port, first)
    stop(server)
    verified = tiers("audit", "verify", env=env)
    assert verified.startswith("audit log intact")
    assert PIN not in verified
