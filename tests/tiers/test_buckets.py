"""Shared token buckets (tiers.buckets): on PostgreSQL the clients' request rate and
identifier budgets are the deployment's, not each process's. Two "nodes" sharing the database
decide exactly as one process would (the in-memory buckets are the model), and under
concurrency no token is given twice."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from errors import BudgetExhausted, RateLimited
from tests.conftest import ACCESS
from tiers.buckets import DatabaseBuckets, MemoryBuckets, Reservoir
from tiers.budgets import IdentifierBudget
from tiers.deployment import Deployment
from tiers.ratelimit import RateLimiter
from tiers.storage.tables import limit_buckets

CLIENT = replace(ACCESS, actor="casino-app", role="partner", client_id=7)
calls = st.lists(st.tuples(st.floats(0, 3), st.integers(0, 400), st.booleans()), max_size=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shared(deployment: Deployment) -> Deployment:
    if deployment.embedded:
        pytest.skip("SQLite serves one host: its buckets are each process's")
    assert deployment.limits.blocking  # a PostgreSQL deployment shares them by default
    return deployment


def _empty(deployment: Deployment) -> None:
    with deployment.engine.begin() as connection:
        connection.execute(delete(limit_buckets))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=calls)
def test_two_nodes_share_one_budget_as_one_process_would(
    shared: Deployment, steps: list[tuple[float, int, bool]]
) -> None:
    _empty(shared)
    clock = Clock()
    model = IdentifierBudget(per_second=200, per_hour=3000, buckets=MemoryBuckets(clock=clock))
    nodes = [  # taking one call's identifiers at a time (chunk 0): exactly the model
        IdentifierBudget(
            per_second=200,
            per_hour=3000,
            buckets=DatabaseBuckets(shared.engine, clock=clock),
            chunk=0,
        )
        for _ in range(2)
    ]
    for wait, size, second_node in steps:
        clock.now += wait
        node = nodes[second_node]
        outcomes = []
        for budget in (model, node):
            try:
                budget.admit(CLIENT, size)
                outcomes.append(None)
            except BudgetExhausted as refused:
                outcomes.append(round(refused.retry_after, 6))
        assert outcomes[0] == outcomes[1]


def test_concurrent_nodes_never_give_a_token_twice(shared: Deployment) -> None:
    clock = Clock()  # frozen: nothing refills
    limiters = [
        RateLimiter(rate=0.001, burst=40, buckets=DatabaseBuckets(shared.engine, clock=clock))
        for _ in range(4)
    ]
    admitted: list[int] = []
    lock = threading.Lock()

    def hammer(limiter: RateLimiter) -> None:
        for _ in range(25):
            try:
                limiter.check(3)
            except RateLimited:
                continue
            with lock:
                admitted.append(1)

    threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 40 == len(admitted)  # of 100 calls from four "nodes", exactly the burst


def test_no_client_name_or_address_is_stored(shared: Deployment) -> None:
    limiter = RateLimiter(rate=1, burst=2, buckets=shared.limits)
    limiter.check(("address", "203.0.113.9"))
    with shared.engine.connect() as connection:
        keys = connection.execute(select(limit_buckets.c.key)).scalars().all()
    assert 1 == len(keys) and "203.0.113" not in keys[0] and 64 == len(keys[0])


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=calls, per_second=st.integers(20, 400))
def test_with_reservoirs_what_nodes_admit_stays_within_the_budget(
    shared: Deployment, steps: list[tuple[float, int, bool]], per_second: int
) -> None:
    """Each node takes a chunk ahead of need: over any stretch of time the deployment admits at
    most the budget, one overdrawing call, and what each node held unspent."""
    _empty(shared)
    clock = Clock()
    chunk = per_second // 4
    nodes = [
        IdentifierBudget(
            per_second=per_second,
            per_hour=10 * per_second,
            buckets=DatabaseBuckets(shared.engine, clock=clock),
            clock=clock,
            chunk=chunk,
        )
        for _ in range(2)
    ]
    admitted: list[tuple[float, int]] = []
    for wait, size, second_node in steps:
        clock.now += wait
        try:
            nodes[second_node].admit(CLIENT, size)
        except BudgetExhausted:
            continue
        admitted.append((clock.now, size))
    biggest = max((size for _, size in admitted), default=0)
    for start, _ in admitted:
        for end, _ in admitted:
            if end < start:
                continue
            window = sum(size for moment, size in admitted if start <= moment <= end)
            bound = per_second + per_second * (end - start) + biggest + 2 * chunk
            assert window <= bound + 1e-6


def test_nodes_taking_tokens_by_chunks_never_exceed_the_burst(shared: Deployment) -> None:
    clock = Clock()  # frozen: nothing refills, nothing lapses
    limiters = [
        RateLimiter(
            rate=0.001,
            burst=40,
            clock=clock,
            chunk=5,
            buckets=DatabaseBuckets(shared.engine, clock=clock),
        )
        for _ in range(4)
    ]
    admitted = 0
    for _ in range(25):
        for limiter in limiters:
            try:
                limiter.check(3)
                admitted += 1
            except RateLimited:
                pass
    assert admitted == 40  # every token taken is spent by the node holding it


def test_a_reservoir_spends_what_it_holds_until_it_lapses() -> None:
    clock = Clock()
    reservoir = Reservoir(ttl=1.0, clock=clock)
    assert not reservoir.spend("k", 1)
    reservoir.keep("k", 3)
    assert reservoir.spend("k", 2) and not reservoir.spend("k", 2)
    reservoir.keep("k", 1)  # unlapsed: kept with what it had
    assert reservoir.spend("k", 2)
    reservoir.keep("k", 5)
    clock.now += 1.0
    assert not reservoir.spend("k", 1)  # lapsed: not given back, not spent
