"""Short pseudonymise calls that arrive together are made in groups (one transaction), and
each still gets exactly what it gets alone: its pseudonyms or its error, and one entry of its
own in the access log, which verifies."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from api import calls, grouping
from tests.api.conftest import Api
from tests.conftest import ACCESS, assert_absent
from tiers.audit_ops import verify_stored
from tiers.deployment import Deployment
from tiers.storage import audit_log

CARDS = [f"4970{n:012d}" for n in range(20)]
# (client, body, status, outcome logged): accepted calls and, among them, refusals.
REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    *[("casino-app", {"kind": "card", "values": [card]}, 200, "ok") for card in CARDS[:12]],
    *[("sncf-app", {"kind": "card", "values": [card, "12ab"]}, 200, "ok") for card in CARDS[12:18]],
    ("casino-app", {"kind": "card", "values": [CARDS[0]], "domain": "sncf"}, 404, "denied"),
    ("casino-app", {"kind": "iban", "values": [CARDS[1]]}, 400, "error"),
    ("hub-app", {"kind": "card", "values": [CARDS[2]]}, 403, "denied"),
]


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group made together (the real function runs)."""
    sizes: list[int] = []
    real: Callable[..., Any] = calls.pseudonymise_together

    def together(deployment: Deployment, requests: list[Any]) -> Any:
        sizes.append(len(requests))
        return real(deployment, requests)

    monkeypatch.setattr(calls, "pseudonymise_together", together)
    return sizes


def _post(api: Api, n: int, client: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {**api.headers(client), "X-Request-Id": f"req{n}"}
    response = api.http.post("/v1/pseudonymise", json=body, headers=headers)
    return response.status_code, response.json()


def test_calls_arriving_together_are_made_together_each_as_alone(
    api: Api, groups: list[int]
) -> None:
    deployment: Deployment = api.http.app.state.service.deployment()  # type: ignore[attr-defined]
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    started = threading.Barrier(len(REQUESTS) + 1)

    def send(n: int, client: str, body: dict[str, Any]) -> None:
        started.wait()
        answers[n] = _post(api, n, client, body)

    threads = [
        threading.Thread(target=send, args=(n, client, body))
        for n, (client, body, _, _) in enumerate(REQUESTS)
    ]
    for thread in threads:
        thread.start()
    # The first call to reach the database waits for this writer, which holds the log head:
    # the others meanwhile wait for the next group (however slowly the machine brings them).
    with deployment.transaction() as connection:
        audit_log.lock_state(connection)
        started.wait()
        time.sleep(0.5)
    for thread in threads:
        thread.join(30)
    assert max(groups) > 1, groups  # some were made together
    assert [answers[n][0] for n in range(len(REQUESTS))] == [r[2] for r in REQUESTS]
    # The same calls one at a time: the same answers.
    for n, (client, body, _, _) in enumerate(REQUESTS):
        assert _post(api, n, client, body) == answers[n]
    entries = [e for e in api.database.audit_entries() if e.request_id.startswith("req")]
    by_request = {e.request_id: e for e in entries[: len(REQUESTS)]}
    assert sorted(by_request) == sorted(f"req{n}" for n in range(len(REQUESTS)))
    for n, (client, body, _, outcome) in enumerate(REQUESTS):
        entry = by_request[f"req{n}"]
        assert (entry.actor, entry.action, entry.outcome) == (client, "pseudonymise", outcome)
        if outcome == "ok":
            valid = sum(v != "12ab" for v in body["values"])
            counts = entry.counts
            assert (counts.records_in, counts.records_out) == (len(body["values"]), valid)
    written = len(api.database.audit_entries())
    assert verify_stored(deployment, access=ACCESS).entries == written
    assert_absent(api.database.stored_bytes(), CARDS, "the database")


def test_a_call_alone_waits_for_no_group(api: Api, groups: list[int]) -> None:
    status, body = _post(api, 0, "casino-app", {"kind": "card", "values": [CARDS[0]]})
    assert (status, len(body["pseudonyms"])) == (200, 1)
    assert groups == []  # a group of one is the call alone


def test_a_group_limits_its_values_and_keeps_the_order() -> None:
    made: list[list[int]] = []

    async def make(items: list[int]) -> list[int | BaseException]:
        made.append(items)
        return [ValueError(item) if item == 7 else item * 10 for item in items]

    grouped: grouping.Grouped[int, int] = grouping.Grouped("test", make, size=lambda n: n, limit=9)

    async def run() -> list[int | BaseException]:
        return await asyncio.gather(
            *(grouped(n) for n in (1, 2, 3, 4, 7, 5)), return_exceptions=True
        )

    answers = asyncio.run(run())
    assert made == [[1, 2, 3], [4], [7], [5]]  # at most 9 a group, at least one call
    assert answers[:4] == [10, 20, 30, 40] and answers[5] == 50
    assert isinstance(answers[4], ValueError)


def test_a_group_that_fails_as_a_whole_fails_only_its_own_calls() -> None:
    async def make(items: list[int]) -> list[int]:
        if 1 in items:
            raise RuntimeError("broken")
        return items

    grouped: grouping.Grouped[int, int] = grouping.Grouped("test_fail", make, limit=2)

    async def run() -> list[int | BaseException]:
        return await asyncio.gather(*(grouped(n) for n in (1, 2, 3)), return_exceptions=True)

    first, second, third = asyncio.run(run())
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
    assert third == 3
