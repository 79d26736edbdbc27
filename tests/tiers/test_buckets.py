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
from tiers.buckets import DatabaseBuckets, MemoryBuckets
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
    nodes = [
        IdentifierBudget(
            per_second=200, per_hour=3000, buckets=DatabaseBuckets(shared.engine, clock=clock)
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
