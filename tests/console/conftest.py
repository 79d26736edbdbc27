"""A real ``tiers serve`` on 127.0.0.1 and Debian's Chromium driven by Playwright.

The browser is /usr/bin/chromium (Debian's package, installed by .ci/run): Playwright never
downloads one. Without it the browser tests are skipped on a developer's machine, and fail in
CI (TIERS_REQUIRE_BROWSER=1). Screenshots of every page go to ``build/screenshots`` (or
``TIERS_SCREENSHOT_DIR``), for a reviewer to look at.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from tests.api.conftest import CLIENTS as API_CLIENTS
from tests.conftest import ACCESS
from tests.hardening.service import free_port
from tiers.admin import add_domain, initialise
from tiers.clients import add_client
from tiers.deployment import Deployment
from tiers.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("TIERS_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(
    os.environ.get("TIERS_SCREENSHOT_DIR", Path(__file__).parents[2] / "build" / "screenshots")
)
CLIENTS = {**API_CLIENTS, "ops2": ("admin", None)}  # a second admin, for four eyes
# The customers of the test: these values must never appear in a page, a download, the
# database, the log or the server's output.
CARDS = ["4970101234561111", "4970101234562222", "4970101234563333"]
EMAILS = ["camille.durand@example.fr"]


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """pytest-playwright's launch options: Debian's Chromium, no network of its own."""
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail("TIERS_REQUIRE_BROWSER=1 but /usr/bin/chromium is not installed")
        pytest.skip("install Debian's chromium to run the browser tests")
    return {
        "executable_path": str(CHROMIUM),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"accept_downloads": True, "viewport": {"width": 1280, "height": 900}}


@dataclass
class Server:
    url: str
    home: Path
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def api(self, name: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[name]}", "X-Purpose": "console test"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def output(self) -> bytes:
        return self.log.read_bytes()


def _deployment(home: Path, **overrides: object) -> tuple[Settings, dict[str, str]]:
    settings = Settings(home=home, argon2_profile="test", **overrides)  # type: ignore[arg-type]
    initialise(settings, access=ACCESS)
    deployment = Deployment.open(settings)
    try:
        for name, role in (("casino", "partner"), ("sncf", "partner"), ("hub", "hub")):
            add_domain(deployment, access=ACCESS, name=name, role=role)
        tokens = {
            name: add_client(deployment, access=ACCESS, name=name, role=role, domain=domain).token
            for name, (role, domain) in CLIENTS.items()
        }
    finally:
        deployment.close()
    return settings, tokens


def start_server(home: Path, **env_overrides: str) -> Iterator[Server]:
    """Initialise ``home``, start ``tiers serve`` on a free port, stop it afterwards."""
    _, tokens = _deployment(home)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIERS_")},
        "TIERS_HOME": str(home),
        "TIERS_ARGON2_PROFILE": "test",
        **env_overrides,
    }
    log = home / "server.log"
    arguments = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("tiers")), *arguments],
            env=env,
            stdout=output,
            stderr=output,
        )
    try:
        launch_wait(process, port)
        yield Server(f"http://127.0.0.1:{port}", home, tokens, process, log, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def launch_wait(process: subprocess.Popen[bytes], port: int) -> None:
    """Wait until /readyz answers 200."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("tiers serve exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail("tiers serve did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service for a module's tests, with some activity of partners in its log."""
    home = tmp_path_factory.mktemp("console") / "var"
    for started in start_server(home):
        _activity(started)
        yield started


def _activity(server: Server) -> None:
    for name in ("casino-app", "sncf-app"):
        answer = server.api(
            name, "POST", "/v1/pseudonymise", json={"kind": "card", "values": CARDS}
        )
        assert 200 == answer.status_code, answer.text
    server.api("casino-app", "POST", "/v1/pseudonymise", json={"kind": "email", "values": EMAILS})
    refused = server.api(
        "casino-app",
        "POST",
        "/v1/pseudonymise",
        json={"kind": "card", "values": CARDS, "domain": "sncf"},
    )
    assert refused.status_code >= 400


def shot(page: Page, name: str) -> None:
    """A screenshot of the whole page, for the reviewers and the guides."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(
    page: Page, server: Server, name: str, purpose: str = "CNIL inspection 2026-114"
) -> None:
    page.goto(server.url + "/console/login")
    page.get_by_label("API key").fill(server.tokens[name])
    page.get_by_label("Purpose of this session").fill(purpose)
    page.get_by_role("button", name="Sign in").click()
