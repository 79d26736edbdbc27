"""The service's side of witnessing, against real HTTP servers on 127.0.0.1: a witness that is
down, slow, answers garbage or cosigns with another key is reported, bounded in time, and
nothing the service did is lost; bad settings are refused with their code."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from errors import ConfigurationError
from tests.conftest import ACCESS, Database
from tests.hardening.service import free_port
from tests.witnesses import KEY, misbehaving
from tiers._witnessing import configured
from tiers.admin import add_domain, initialise
from tiers.deployment import Deployment
from tiers.settings import Settings


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
    database: Database, mode: str, code: str
) -> None:
    with misbehaving(mode) as port:
        _reported(database, port, code)


def _reported(database: Database, port: int, code: str) -> None:
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
    # named, not by the random key: every worker of `make test` must collect the same ids
    ids=["no-scheme", "no-key", "not-a-key", "not-a-cosigner", "quorum-too-high"],
)
def test_bad_witness_settings_are_refused(
    tmp_path: Path, witnesses: str, quorum: int | None
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        configured(Settings(home=tmp_path, witnesses=witnesses, witness_quorum=quorum))
    assert "bad_witnesses" == refused.value.code
    assert "127.0.0.1" not in refused.value.message  # the setting's value is not echoed
