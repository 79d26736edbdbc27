"""Crash safety of the one-transaction operations: an exchange, a campaign and a key rotation,
each cut short by SIGKILL of a real ``tiers serve`` (uvicorn on 127.0.0.1) while it runs.

After the restart the operation has left nothing behind (no subject, card, delivery, key version
or file), it runs again exactly once, and ``tiers audit verify`` passes. Each test checks that
the kill really landed while the request was in flight.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ACCESS, Database
from tests.hardening.service import (
    InFlight,
    count,
    free_port,
    kill_in_flight,
    request,
    start,
    stop,
    tiers,
)
from tiers.admin import add_domain, initialise
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange
from tiers.inbox import delivery_file, list_inbox
from tiers.links import associate

STALE_SECONDS = 2


def environment(database: Database) -> dict[str, str]:
    return {
        **os.environ,
        **database.env(),
        "TIERS_ARGON2_PROFILE": "test",
        "TIERS_JOB_STALE_SECONDS": str(STALE_SECONDS),
        "TIERS_RATE_LIMIT_BURST": "100000",
    }


def inbox_files(database: Database) -> list[str]:
    """Every file in the inbox directory, temporary ones included."""
    directory = database.home / "inbox"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def restart_after_crash(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    # A killed writer's files are swept once they are older than the staleness limit.
    time.sleep(STALE_SECONDS + 0.5)
    return start(env, port)


def purchases(rows: int, first_card: int) -> Iterator[bytes]:
    yield b"card,date,amount,store\n"
    for start_row in range(0, rows, 2000):
        yield "".join(
            f"{first_card + n},2026-11-02,12.50,C-042\n" for n in range(start_row, start_row + 2000)
        ).encode()
        time.sleep(0.05)


def test_an_exchange_killed_mid_file_leaves_no_card_and_no_delivery(database: Database) -> None:
    env = environment(database)
    tiers("init", env=env)
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    tiers("domain", "add", "hub", "--role", "hub", env=env)
    casino = tiers(
        "client", "add", "casino-app", "--role", "partner", "--domain", "casino", env=env
    ).strip()
    hub = tiers("client", "add", "hub-app", "--role", "hub", "--domain", "hub", env=env).strip()
    port = free_port()
    server = start(env, port)
    flight = InFlight(
        port, "/v1/exchanges?type=purchases", casino, purchases(400_000, 10_000_000), "text/csv"
    )
    kill_in_flight(server, flight, 1.5)

    server = restart_after_crash(env, port)
    try:
        assert (200, []) == request(port, "GET", "/v1/inbox", hub)
        assert (200, []) == request(port, "GET", "/v1/inbox", casino)
        assert 0 == count(database, "cards")
        assert 0 == count(database, "subjects")
        assert [] == inbox_files(database)
        # Sent again, it is delivered once.
        flight = InFlight(
            port, "/v1/exchanges?type=purchases", casino, purchases(4000, 10_000_000), "text/csv"
        )
        flight.join()
        assert 200 == flight.status
        status, deliveries = request(port, "GET", "/v1/inbox", hub)
        assert 200 == status and isinstance(deliveries, list)
        assert [("exchange", "purchases", 4000)] == [
            (d["kind"], d["name"], d["rows"]) for d in deliveries
        ]
        assert 4000 == count(database, "cards")
    finally:
        stop(server)
    assert "audit log intact" in tiers("audit", "verify", env=env)


def hub_keys_of_linked_customers(database: Database, customers: int, tmp_path: Path) -> list[str]:
    """``customers`` alliance customers (a Casino and an SNCF card each), and their hub keys as
    the hub received them in an exchange."""
    settings = database.settings(argon2_profile="test")
    initialise(settings, access=ACCESS)
    deployment = Deployment.open(settings)
    try:
        add_domain(deployment, access=ACCESS, name="casino", role="partner")
        add_domain(deployment, access=ACCESS, name="sncf", role="partner")
        add_domain(deployment, access=ACCESS, name="hub", role="hub")
        casino_cards = [str(10_000_000 + n) for n in range(customers)]
        enrol_cards(deployment, access=ACCESS, domain="casino", values=casino_cards)
        enrol_cards(
            deployment,
            access=ACCESS,
            domain="sncf",
            values=[str(70_000_000 + n) for n in range(customers)],
        )
        for n in range(customers):
            associate(
                deployment,
                access=ACCESS,
                domain="casino",
                card=str(10_000_000 + n),
                other_domain="sncf",
                other_card=str(70_000_000 + n),
            )
        month = tmp_path / "month.csv"
        month.write_text(
            "card,date,amount,store\n"
            + "".join(f"{card},2026-11-02,1.00,C-1\n" for card in casino_cards)
        )
        send_exchange(
            deployment, access=ACCESS, domain="casino", exchange_type="purchases", source=month
        )
        (delivery,) = list_inbox(deployment, access=ACCESS, domain="hub")
        with delivery_file(
            deployment, access=ACCESS, delivery_id=delivery.id, domain="hub"
        ) as handle:
            rows = handle.read().decode()
        return [line.split(",")[0] for line in rows.splitlines()[1:]]
    finally:
        deployment.close()


def test_a_campaign_killed_mid_routing_delivers_nothing_then_exactly_once(
    database: Database, tmp_path: Path
) -> None:
    keys = hub_keys_of_linked_customers(database, 20, tmp_path)
    assert 20 == len(set(keys))
    env = environment(database)
    casino = tiers(
        "client", "add", "casino-app", "--role", "partner", "--domain", "casino", env=env
    ).strip()
    hub = tiers("client", "add", "hub-app", "--role", "hub", "--domain", "hub", env=env).strip()
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    # Well-formed keys the hub never had: each one is looked up, which makes the campaign long.
    unknown = [
        "hub.v1." + base64.b32encode(rng.randbytes(20)).decode().lower() for _ in range(150_000)
    ]
    files_before = inbox_files(database)
    port = free_port()
    server = start(env, port)
    body = json.dumps({"name": "xmas", "linking_keys": keys + unknown}).encode()
    kill_in_flight(server, InFlight(port, "/v1/campaigns", hub, body, "application/json"), 1.0)

    server = restart_after_crash(env, port)
    try:
        status, deliveries = request(port, "GET", "/v1/inbox", casino)
        assert (200, []) == (status, [d for d in deliveries if d["kind"] == "campaign"])  # type: ignore[union-attr]
        assert files_before == inbox_files(database)
        status, routed = request(
            port, "POST", "/v1/campaigns", hub, {"name": "xmas", "linking_keys": keys}
        )
        assert (200, {"casino": 20}) == (status, routed["per_sg"])  # type: ignore[index]
        status, deliveries = request(port, "GET", "/v1/inbox", casino)
        campaigns = [d for d in deliveries if d["kind"] == "campaign"]  # type: ignore[union-attr]
        assert [20] == [d["rows"] for d in campaigns]
    finally:
        stop(server)
    assert "audit log intact" in tiers("audit", "verify", env=env)


def test_a_key_rotation_killed_mid_reindex_leaves_the_old_version_whole(
    database: Database, tmp_path: Path
) -> None:
    env = environment(database)
    tiers("init", env=env)
    tiers("domain", "add", "casino", "--role", "partner", env=env)
    tiers("domain", "add", "hub", "--role", "hub", env=env)
    cards = tmp_path / "cards.csv"
    cards.write_text("card\n" + "".join(f"{10_000_000 + n}\n" for n in range(100_000)))
    tiers(
        "tokenise-file", str(cards), "-o", str(tmp_path / "out.csv"), "--domain", "casino",
        "--column", "card=card", "--purpose", "loyalty file migration", env=env,
    )  # fmt: skip
    operator = tiers("client", "add", "ops", "--role", "admin", env=env).strip()
    hub = tiers("client", "add", "hub-app", "--role", "hub", "--domain", "hub", env=env).strip()
    index_before = count(database, "pseudonym_index")
    hub_keys_before = count(database, "hub_keys")
    port = free_port()
    server = start(env, port)
    flight = InFlight(port, "/v1/domains/hub/keys/rotate", operator, b"", "application/json")
    kill_in_flight(server, flight, 1.0)

    server = restart_after_crash(env, port)
    try:
        status, versions = request(port, "GET", "/v1/domains/hub/keys", operator)
        assert (200, [(1, "active")]) == (
            status,
            [(v["version"], v["state"]) for v in versions],  # type: ignore[union-attr]
        )
        assert index_before == count(database, "pseudonym_index")
        assert hub_keys_before == count(database, "hub_keys")
        assert (200, []) == request(port, "GET", "/v1/inbox", hub)
        assert [] == inbox_files(database)
        status, rotated = request(port, "POST", "/v1/domains/hub/keys/rotate", operator)
        assert (200, 2) == (status, rotated["new_version"])  # type: ignore[index]
        status, deliveries = request(port, "GET", "/v1/inbox", hub)
        assert [("rekey", hub_keys_before)] == [(d["kind"], d["rows"]) for d in deliveries]  # type: ignore[union-attr]
    finally:
        stop(server)
    assert "audit log intact" in tiers("audit", "verify", env=env)
