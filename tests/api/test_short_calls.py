"""Short calls run on the event loop only when the embedded database is free at that instant;
otherwise, and for long calls, in the thread pool. Either way the answer and the log are the
same, and the event loop never waits for another writer."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from api import calls
from api.calls import SHORT_CALL_THREADS, SHORT_CALL_VALUES, call
from tests.api.conftest import Api
from tests.conftest import ACCESS
from tiers.deployment import Deployment
from tiers.settings import Settings

POOL_THREAD = "AnyIO worker thread"


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads the route's core calls ran in (alone or in groups, as
    api.calls makes them)."""
    seen: list[str] = []

    def recorded(real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            seen.append(threading.current_thread().name)
            return real(*args, **kwargs)

        return run

    for name in ("pseudonymise_values", "pseudonymise_together"):
        monkeypatch.setattr(calls, name, recorded(getattr(calls, name)))
    return seen


def _pseudonymise(api: Api, values: list[str]) -> dict[str, Any]:
    response = api.http.post(
        "/v1/pseudonymise",
        json={"kind": "card", "values": values},
        headers=api.headers("casino-app"),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until ``condition()`` holds (the test's own assertions then say whether it did)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _deployment(api: Api) -> Deployment:
    deployment: Deployment = api.http.app.state.service.deployment()  # type: ignore[attr-defined]
    return deployment


def test_short_calls_run_on_the_event_loop_only_on_sqlite(api: Api, threads: list[str]) -> None:
    inline = _pseudonymise(api, ["4970101234560001"])
    assert len(inline["pseudonyms"]) == 1
    if api.database.backend == "sqlite":
        assert threads[-1] != POOL_THREAD
    else:  # a database server: every call waits on the network, so in the pool
        assert threads[-1] == POOL_THREAD


def test_large_batches_run_in_the_pool_with_the_same_results(api: Api, threads: list[str]) -> None:
    values = [f"4970{n:012d}" for n in range(SHORT_CALL_VALUES + 1)]
    large = _pseudonymise(api, values)
    assert threads[-1] == POOL_THREAD
    small = _pseudonymise(api, values[:SHORT_CALL_VALUES])
    assert small["pseudonyms"] == large["pseudonyms"][:SHORT_CALL_VALUES]


@pytest.fixture
def sqlite_only(api: Api) -> None:
    if api.database.backend != "sqlite":
        pytest.skip("only an embedded database runs calls on the event loop")


@pytest.mark.usefixtures("sqlite_only")
def test_a_call_goes_to_the_pool_while_another_thread_writes(api: Api, threads: list[str]) -> None:
    deployment = _deployment(api)
    writing = threading.Event()

    def writer() -> None:
        with deployment.transaction():
            writing.set()
            # Held until the request has reached its core call, wherever that runs, rather
            # than for a fixed time that a loaded machine can outlast before the request
            # checks the database (the call once found it free and ran on the loop).
            _until(lambda: bool(threads))

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(5)
    result = _pseudonymise(api, ["4970101234560002"])
    thread.join()
    assert threads[-1] == POOL_THREAD
    assert result["pseudonyms"][0].startswith("casino.v1.")


@pytest.fixture
def other_process_lock(api: Api) -> Iterator[sqlite3.Connection]:
    """Another process's write lock on the database file (a connection of its own, BEGIN
    IMMEDIATE held until the test ends it)."""
    holder = sqlite3.connect(api.database.home / "tiers.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.usefixtures("sqlite_only")
def test_while_another_process_writes_the_loop_keeps_serving_and_nothing_is_logged_twice(
    api: Api, threads: list[str], other_process_lock: sqlite3.Connection
) -> None:
    before = len(api.database.audit_entries())
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(_pseudonymise(api, ["4970101234560003"]))
    )
    waiting.start()
    # The call has reached its core call (it found the database locked and went to the pool,
    # where it now waits for the lock), however slowly a loaded machine got it there.
    _until(lambda: bool(threads))
    assert waiting.is_alive()
    assert api.http.get("/healthz").status_code == 200  # the event loop is not blocked
    other_process_lock.execute("ROLLBACK")
    waiting.join(30)
    assert not waiting.is_alive()
    assert threads == [POOL_THREAD]
    assert answers[0]["pseudonyms"][0].startswith("casino.v1.")
    entries = api.database.audit_entries()[before:]
    assert [(e.action, e.outcome) for e in entries] == [("pseudonymise", "ok")]


def test_the_writer_is_free_only_when_no_thread_and_no_process_writes(
    settings: Settings, deployment: Deployment
) -> None:
    other = Deployment.open(settings)
    try:
        with other.writer_if_free() as free:
            assert free is other.embedded
        if not other.embedded:
            return
        with deployment.transaction(), other.writer_if_free() as free:
            assert not free  # another process (here: another deployment) writes
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with other.transaction():
                holding.set()
                release.wait(5)

        thread = threading.Thread(target=hold)
        thread.start()
        assert holding.wait(5)
        with other.writer_if_free() as free:
            assert not free  # a thread of this process writes
        release.set()
        thread.join()
        with other.writer_if_free() as free:
            assert free
    finally:
        other.close()


def test_a_failed_try_leaves_later_transactions_waiting_for_the_lock(
    settings: Settings, deployment: Deployment
) -> None:
    """The try of the lock is made with no wait; the connection then waits again as usual."""
    if not deployment.embedded:
        pytest.skip("SQLite only")
    other = Deployment.open(settings)
    try:
        done = threading.Event()
        with deployment.transaction():
            with other.writer_if_free() as free:
                assert not free

            def write() -> None:
                with other.transaction() as connection:
                    other.record(connection, ACCESS, action="whoami")
                done.set()

            thread = threading.Thread(target=write)
            thread.start()
            time.sleep(0.2)
            assert not done.is_set()  # waiting for the lock, not failed
        thread.join(10)
        assert done.is_set()
    finally:
        other.close()


def test_short_calls_in_the_pool_run_a_few_at_a_time_within_a_limit_of_their_own(
    deployment: Deployment,
) -> None:
    """Short calls that cannot run on the event loop (here: another thread of the process
    writes) run at most SHORT_CALL_THREADS at a time; long calls have the pool's own limit.

    A call waits (at most 5 s) until as many calls of its kind as the test expects to see
    together have run together, so that reaching a limit does not depend on how fast the
    machine starts threads; then it stays 0.05 s, for any call over the limit to show."""
    condition = threading.Condition()
    running = {"short": 0, "long": 0}
    peak = {"short": 0, "long": 0}
    together = {"short": SHORT_CALL_THREADS, "long": SHORT_CALL_THREADS + 1}
    on_loop: list[str] = []
    loop_thread = threading.current_thread().name

    def work(kind: str) -> str:
        if threading.current_thread().name == loop_thread:
            on_loop.append(kind)
        with condition:
            running[kind] += 1
            peak[kind] = max(peak[kind], running[kind])
            condition.notify_all()
            condition.wait_for(lambda: peak[kind] >= together[kind], timeout=5)
        time.sleep(0.05)
        with condition:
            running[kind] -= 1
        return kind

    async def calls() -> None:
        async with anyio.create_task_group() as group:
            for kind in ["long"] * 8 + ["short"] * 8:
                group.start_soon(
                    functools.partial(
                        call, deployment, functools.partial(work, kind), short=kind == "short"
                    )
                )

    held, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with deployment.transaction(checkpoint=False):  # holds the write turn
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    assert held.wait(5)
    try:
        anyio.run(calls)
    finally:
        release.set()
        holder.join()
    assert on_loop == []
    assert peak["short"] == SHORT_CALL_THREADS
    assert peak["long"] > SHORT_CALL_THREADS
