"""Identifier budgets: what a client is admitted, over any stretch of time, is bounded by the
budget, whatever the sizes of its calls (one model: a sum over a sliding window)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ACCESS
from tiers.budgets import BudgetExhausted, IdentifierBudget

CLIENT = replace(ACCESS, actor="casino-app", role="partner", client_id=7)
OTHER = replace(CLIENT, actor="sncf-app", client_id=8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


calls = st.lists(st.tuples(st.floats(0, 5), st.integers(0, 500)), max_size=60)


@given(calls, st.integers(1, 300), st.integers(1, 2000))
def test_what_is_admitted_stays_within_the_budget(
    steps: list[tuple[float, int]], per_second: int, per_hour: int
) -> None:
    clock = Clock()
    budget = IdentifierBudget(per_second=per_second, per_hour=per_hour, clock=clock)
    admitted: list[tuple[float, int]] = []
    for wait, size in steps:
        clock.now += wait
        try:
            budget.admit(CLIENT, size)
        except BudgetExhausted as refused:
            assert refused.retry_after > 0
            continue
        admitted.append((clock.now, size))
    biggest = max((size for _, size in admitted), default=0)
    for start, _ in admitted:
        for capacity, rate in ((per_second, per_second), (per_hour, per_hour / 3600)):
            for end, _ in admitted:
                if end < start:
                    continue
                window = sum(size for moment, size in admitted if start <= moment <= end)
                # a full bucket, what refilled meanwhile, and one call that overdrew it
                assert window <= capacity + rate * (end - start) + biggest + 1e-6


def test_a_large_call_is_admitted_then_holds_the_next_ones_back() -> None:
    clock = Clock()
    budget = IdentifierBudget(per_second=100, per_hour=10_000, clock=clock)
    budget.admit(CLIENT, 1_000)  # a batch larger than a second's budget: admitted once
    with pytest.raises(BudgetExhausted) as refused:
        budget.admit(CLIENT, 1)
    assert "identifier_budget" == refused.value.code
    assert 9.0 == pytest.approx(refused.value.retry_after)  # 900 overdrawn at 100 a second
    budget.admit(OTHER, 100)  # another client's budget is its own
    clock.now += 9.0
    budget.admit(CLIENT, 1)


def test_the_hourly_budget_holds_when_the_second_refills() -> None:
    clock = Clock()
    budget = IdentifierBudget(per_second=100, per_hour=360, clock=clock)
    for _ in range(4):
        budget.admit(CLIENT, 100)
        clock.now += 1.0
    # 400 taken in four seconds, 0.4 refilled: 39.6 over the hour's 360, at 0.1 a second
    with pytest.raises(BudgetExhausted) as refused:
        budget.admit(CLIENT, 1)
    assert refused.value.retry_after == pytest.approx(39.6 / 0.1)


def test_a_file_is_charged_when_it_ends_and_the_operator_has_no_budget() -> None:
    clock = Clock()
    budget = IdentifierBudget(per_second=10, per_hour=1000, clock=clock)
    budget.admit(CLIENT)
    budget.charge(CLIENT, 60)  # a 20-column file of three rows
    with pytest.raises(BudgetExhausted):
        budget.admit(CLIENT, 1)
    operator = replace(ACCESS, client_id=None)
    budget.admit(operator, 10**9)
    budget.admit(operator, 10**9)
