"""Servers started by a hardening test are killed when it ends, whatever its outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hardening.service import STARTED


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test() -> Iterator[None]:
    yield
    while STARTED:
        server = STARTED.pop()
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
