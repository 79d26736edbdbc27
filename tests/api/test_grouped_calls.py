"""Short pseudonymise calls and single-key link resolutions that arrive together are made in
groups (one transaction), and each still gets exactly what it gets alone: its answer or its
error, and one entry of its own in the access log, which verifies. Then the grouping itself
(api._grouping): order, limits, failures."""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from api import _grouping, calls
from audit import AuditEntry
from tests.api.conftest import Api
from tests.conftest import ACCESS, assert_absent, run_coroutine
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


class _Sizes(list[int]):
    """The size of each group made together; ``failed``, the sizes of those that raised."""

    failed: list[int]


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> _Sizes:
    """The groups ``api.calls.<name>`` makes together (the real function runs)."""
    sizes = _Sizes()
    sizes.failed = []
    real: Callable[..., Any] = getattr(calls, name)

    def together(deployment: Deployment, requests: list[Any]) -> Any:
        sizes.append(len(requests))
        try:
            return real(deployment, requests)
        except Exception:
            sizes.failed.append(len(requests))
            raise

    monkeypatch.setattr(calls, name, together)
    return sizes


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> _Sizes:
    return _spy(monkeypatch, "pseudonymise_together")


@pytest.fixture
def resolution_groups(monkeypatch: pytest.MonkeyPatch) -> _Sizes:
    return _spy(monkeypatch, "resolve_together")


Answer = tuple[int, dict[str, Any]]


def _post(api: Api, n: int, client: str, body: dict[str, Any]) -> Answer:
    headers = {**api.headers(client), "X-Request-Id": f"req{n}"}
    response = api.http.post("/v1/pseudonymise", json=body, headers=headers)
    return response.status_code, response.json()


def _get(api: Api, n: int, client: str, path: str) -> Answer:
    headers = {**api.headers(client), "X-Request-Id": f"req{n}"}
    response = api.http.get(path, headers=headers)
    return response.status_code, response.json()


def _concurrently(api: Api, sends: list[Callable[[], Answer]]) -> list[Answer]:
    """The answers of ``sends``, sent at once from threads of their own. The first call to
    reach the database waits for a writer that holds the log head: the others meanwhile wait
    for the next group (however slowly the machine brings them there)."""
    deployment: Deployment = api.http.app.state.service.deployment()  # type: ignore[attr-defined]
    answers: dict[int, Answer] = {}
    started = threading.Barrier(len(sends) + 1)

    def send(n: int) -> None:
        started.wait()
        answers[n] = sends[n]()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(sends))]
    for thread in threads:
        thread.start()
    with deployment.transaction() as connection:
        audit_log.lock_state(connection)
        started.wait()
        time.sleep(0.5)
    for thread in threads:
        thread.join(30)
    return [answers[n] for n in range(len(sends))]


def _entries_by_request(api: Api, count: int) -> dict[str, AuditEntry]:
    """The first entry of each request ``req<n>`` (of the calls made together)."""
    entries = [e for e in api.database.audit_entries() if e.request_id.startswith("req")]
    found = {e.request_id: e for e in reversed(entries)}
    assert sorted(found) == sorted(f"req{n}" for n in range(count))
    return found


def _log_verifies(api: Api) -> None:
    deployment: Deployment = api.http.app.state.service.deployment()  # type: ignore[attr-defined]
    written = len(api.database.audit_entries())
    assert verify_stored(deployment, access=ACCESS).entries == written


def test_calls_arriving_together_are_made_together_each_as_alone(api: Api, groups: _Sizes) -> None:
    answers = _concurrently(
        api,
        [
            functools.partial(_post, api, n, client, body)
            for n, (client, body, _, _) in enumerate(REQUESTS)
        ],
    )
    assert max(groups) > 1, groups  # some were made together
    # The refusals (another domain, an unknown kind, a role without the right) were made alone
    # from the start: no group was refused for them and redone call by call.
    assert groups.failed == []
    assert sum(groups) <= sum(status == 200 for _, _, status, _ in REQUESTS)
    assert [status for status, _ in answers] == [r[2] for r in REQUESTS]
    # The same calls one at a time: the same answers.
    for n, (client, body, _, _) in enumerate(REQUESTS):
        assert _post(api, n, client, body) == answers[n]
    by_request = _entries_by_request(api, len(REQUESTS))
    for n, (client, body, _, outcome) in enumerate(REQUESTS):
        entry = by_request[f"req{n}"]
        assert (entry.actor, entry.action, entry.outcome) == (client, "pseudonymise", outcome)
        if outcome == "ok":
            valid = sum(v != "12ab" for v in body["values"])
            counts = entry.counts
            assert (counts.records_in, counts.records_out) == (len(body["values"]), valid)
    _log_verifies(api)
    assert_absent(api.database.stored_bytes(), CARDS, "the database")


def _hub_card_keys(api: Api) -> list[str]:
    """The hub's linking keys of the cards enrolled so far."""
    engine = create_engine(api.database.url or f"sqlite:///{api.database.home / 'tiers.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT version, value FROM hub_keys WHERE kind = 'card' ORDER BY value")
            ).all()
    finally:
        engine.dispose()
    return [f"hub.v{v}.{base64.b32encode(bytes(value)).decode().lower()}" for v, value in rows]


def test_link_resolutions_arriving_together_are_made_together_each_as_alone(
    api: Api, resolution_groups: _Sizes
) -> None:
    enrolled = api.http.post(
        "/v1/cards/enrol", headers=api.headers("casino-app"), json={"values": CARDS[:10]}
    )
    assert enrolled.status_code == 200
    keys = _hub_card_keys(api)
    unknown = keys[0][:-4] + ("aaaa" if not keys[0].endswith("aaaa") else "bbbb")
    # (client, key, status, outcome logged)
    wanted = [
        *[("hub-app", key, 200, "ok") for key in keys],
        ("hub-app", unknown, 404, "error"),
        ("casino-app", keys[0], 403, "denied"),
    ]
    answers = _concurrently(
        api,
        [
            functools.partial(_get, api, n, client, f"/v1/links/{key}")
            for n, (client, key, _, _) in enumerate(wanted)
        ],
    )
    assert max(resolution_groups) > 1, resolution_groups  # some were made together
    assert [status for status, _ in answers] == [w[2] for w in wanted]
    for n, (client, key, _, _) in enumerate(wanted):
        assert _get(api, n, client, f"/v1/links/{key}") == answers[n]
    assert {a["cards"][0]["linking_key"] for _, a in answers[: len(keys)]} == set(keys)
    by_request = _entries_by_request(api, len(wanted))
    for n, (client, _, _, outcome) in enumerate(wanted):
        entry = by_request[f"req{n}"]
        assert (entry.actor, entry.action, entry.outcome) == (client, "link_resolve", outcome)
    _log_verifies(api)


def test_a_call_alone_waits_for_no_group(api: Api, groups: _Sizes) -> None:
    status, body = _post(api, 0, "casino-app", {"kind": "card", "values": [CARDS[0]]})
    assert (status, len(body["pseudonyms"])) == (200, 1)
    assert groups == []  # a group of one is the call alone


def test_a_group_limits_its_values_and_keeps_the_order() -> None:
    made: list[list[int]] = []

    async def make(items: list[int]) -> list[int | BaseException]:
        made.append(items)
        return [ValueError(item) if item == 7 else item * 10 for item in items]

    grouped: _grouping.Grouped[int, int] = _grouping.Grouped(
        "test", make, size=lambda n: n, limit=9
    )

    async def run() -> list[int | BaseException]:
        return await asyncio.gather(
            *(grouped(n) for n in (1, 2, 3, 4, 7, 5)), return_exceptions=True
        )

    answers = run_coroutine(run())
    assert made == [[1, 2, 3], [4], [7], [5]]  # at most 9 a group, at least one call
    assert answers[:4] == [10, 20, 30, 40] and answers[5] == 50
    assert isinstance(answers[4], ValueError)


def test_a_group_that_fails_as_a_whole_fails_only_its_own_calls() -> None:
    async def make(items: list[int]) -> list[int]:
        if 1 in items:
            raise RuntimeError("broken")
        return items

    grouped: _grouping.Grouped[int, int] = _grouping.Grouped("test_fail", make, limit=2)

    async def run() -> list[int | BaseException]:
        return await asyncio.gather(*(grouped(n) for n in (1, 2, 3)), return_exceptions=True)

    first, second, third = run_coroutine(run())
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
    assert third == 3
