"""A real ``tiers serve`` under a flood of bad keys and a trickled upload: the legitimate
client's calls are still answered, the flood is refused per address, the trickle is cut off
(408 ``upload_too_slow``) and its job delivers nothing. Correctness only: how fast the
legitimate calls stay is measured by ``make bench`` (the ``abuse`` section)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.conftest import Database
from tests.hardening.service import free_port, request, start, tiers

pytestmark = pytest.mark.slow

UNKNOWN = f"tiers_{'a' * 10}_{'A' * 43}"


def trickle(port: int, token: str, answers: list[bytes]) -> None:
    """An exchange sent a few bytes at a time, far below the minimum rate."""
    head = (
        "POST /v1/exchanges?type=purchases HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nX-Purpose: test\r\nContent-Type: text/csv\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    body = b"card,date,amount\n" + b"10000001,2026-11-01,1\n" * 50
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head)
        for start_at in range(0, len(body), 8):
            try:
                client.sendall(body[start_at : start_at + 8])
            except OSError:  # the service answered and closed
                break
            client.settimeout(0.25)
            try:
                answer = client.recv(4096)
            except TimeoutError:
                continue
            answers.append(whole_answer(client, answer))
            return


def whole_answer(client: socket.socket, start: bytes) -> bytes:
    """The rest of an HTTP answer whose start was read (its body may come in a later segment)."""
    client.settimeout(5)
    answer = start
    while b"\r\n\r\n" not in answer:
        answer += client.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        more = client.recv(4096)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def flood(port: int, stop: threading.Event, statuses: list[int]) -> None:
    while not stop.is_set():
        statuses.append(request(port, "GET", "/v1/whoami", UNKNOWN, timeout=30)[0])


def test_a_flood_and_a_trickle_do_not_starve_a_client(database: Database) -> None:
    env = {
        **os.environ,
        **database.env(),
        "TIERS_ARGON2_PROFILE": "test",
        "TIERS_UPLOAD_GRACE_SECONDS": "1",
        "TIERS_UPLOAD_MIN_BYTES_PER_SECOND": "1024",
        "TIERS_ADDRESS_VERIFICATIONS_BURST": "10",
    }
    tiers("init", env=env)
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    tiers("domain", "add", "hub", "--role", "hub", env=env)
    added = tiers("client", "add", "casino-app", "--role", "partner", "--domain", "casino", env=env)
    token = added.strip().split()[-1]
    port = free_port()
    server = start(env, port)
    try:
        stop = threading.Event()
        statuses: list[int] = []
        flooders = [threading.Thread(target=flood, args=(port, stop, statuses)) for _ in range(8)]
        answers: list[bytes] = []
        slow = threading.Thread(target=trickle, args=(port, token, answers))
        for thread in [*flooders, slow]:
            thread.start()
        mine = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            body = {"kind": "card", "values": ["10000001"]}
            mine.append(request(port, "POST", "/v1/pseudonymise", token, body, timeout=30)[0])
        stop.set()
        for thread in [*flooders, slow]:
            thread.join(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert mine and {200} == set(mine)
    assert {401, 429} == set(statuses)  # refused, then refused before any verification
    assert answers and answers[0].startswith(b"HTTP/1.1 408")
    assert b"upload_too_slow" in answers[0]
    entries = database.audit_entries()
    cut = [e for e in entries if e.code == "upload_too_slow"]
    assert [("exchange_send", "casino-app")] == [(e.action, e.actor) for e in cut]
    anonymous = [e for e in entries if e.actor == "anonymous"]
    # two codes, each at most two entries a minute however many refusals (the test may cross
    # a minute)
    assert len(anonymous) <= 8 < sum(int(e.detail["count"]) for e in anonymous)
