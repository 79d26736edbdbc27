"""Registering values the pseudonym index already holds is skipped (``Registrar.skip_known``):
whatever came before — cards registered before the hub existed, the hub's or the partner's
key rotated, cards withdrawn — the tables end as they would if every value were registered
and enrolled again."""

from __future__ import annotations

import contextlib
from contextlib import ExitStack

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, select

from tests.conftest import ACCESS, NOW
from tiers.admin import add_domain, rotate_key
from tiers.deployment import Deployment
from tiers.exchanges import withdraw_customer
from tiers.identifiers import get_kind
from tiers.storage import sorted_inserts
from tiers.storage.tables import cards, hub_keys, pseudonym_index, subjects, withdrawn
from tiers.tokenisation import HELD_FROM_VALUES, Registrar, Tokeniser, card_enroller
from tiers.tokenisation import pseudonymise_values as pseudonymise

CARDS = [f"49701012345600{n:02d}" for n in range(8)]
TABLES: tuple[Table, ...] = (subjects, pseudonym_index, cards, hub_keys, withdrawn)


class _Undone(Exception):
    """Raised to roll a transaction back once its outcome was read."""


def _tables(connection: Connection) -> dict[str, list[tuple[object, ...]]]:
    """The rows of TABLES, sorted; cards without their id (PostgreSQL's sequences are not
    rolled back, so the same card may take another number)."""
    return {
        table.name: sorted(
            (
                tuple(row)
                for row in connection.execute(select(*(c for c in table.c if c.name != "id")))
            ),
            key=repr,
        )
        for table in TABLES
    }


def _registered(
    deployment: Deployment, values: list[str], *, skip_known: bool
) -> dict[str, list[tuple[object, ...]]]:
    """The tables once ``values`` are registered in casino's domain by a :class:`Registrar`,
    read inside its transaction, which is then rolled back."""
    outcome: dict[str, list[tuple[object, ...]]] = {}
    with contextlib.suppress(_Undone), ExitStack() as stack:
        connection = stack.enter_context(deployment.transaction())
        held = (
            stack.enter_context(sorted_inserts(connection))
            if len(values) >= HELD_FROM_VALUES
            else None
        )
        tokeniser = Tokeniser.open(deployment, connection, "casino")
        registrar = Registrar(
            connection,
            tokeniser.domain.id,
            tokeniser.domain_key.version,
            NOW,
            enroller=card_enroller(deployment, connection, tokeniser, NOW),
            held=held,
            skip_known=skip_known,
        )
        for token in tokeniser.tokenise_many(get_kind("card"), values):
            assert isinstance(token, tuple)
            base, mac, _ = token
            registrar.add(base, mac, "card")
        registrar.finish()
        if held is not None:
            stack.close()  # the held rows go into the tables when the block ends
            connection = stack.enter_context(deployment.transaction())
        outcome = _tables(connection)
        raise _Undone
    return outcome


_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.frozensets(st.sampled_from(CARDS), min_size=1)),
        st.tuples(st.just("withdraw"), st.sampled_from(CARDS)),
        st.tuples(st.sampled_from(["hub", "rotate hub", "rotate casino"]), st.none()),
    ),
    max_size=6,
)


class _History:
    """What came before, kept across hypothesis' examples (they share the test's database, so
    each example's history follows the one before): registrations, a hub created later,
    rotations, withdrawals."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.has_hub = False
        self.registered: set[str] = set()
        add_domain(deployment, access=ACCESS, name="casino", role="partner")

    def register(self, values: list[str]) -> None:
        pseudonymise(self.deployment, access=ACCESS, domain="casino", kind="card", values=values)
        self.registered.update(values)

    def apply(self, steps: list[tuple[str, object]]) -> None:
        for step, argument in steps:
            if step == "register":
                assert isinstance(argument, frozenset)
                self.register(sorted(argument))
            elif step == "withdraw" and argument in self.registered:
                assert isinstance(argument, str)
                withdraw_customer(self.deployment, access=ACCESS, domain="casino", card=argument)
                self.registered.discard(argument)  # registering it again keys it no more
            elif step == "hub" and not self.has_hub:
                add_domain(self.deployment, access=ACCESS, name="hub", role="hub")
                self.has_hub = True
            elif step == "rotate casino" or (step == "rotate hub" and self.has_hub):
                rotate_key(self.deployment, access=ACCESS, domain=step.removeprefix("rotate "))


@pytest.fixture
def history(deployment: Deployment) -> _History:
    return _History(deployment)


@settings(max_examples=25)
@given(steps=_STEPS, values=st.lists(st.sampled_from(CARDS), min_size=1, max_size=10))
@example(  # cards registered and one withdrawn before the hub existed, then asked again
    steps=[("register", frozenset(CARDS[:3])), ("withdraw", CARDS[0]), ("hub", None)],
    values=[*CARDS[:4], CARDS[1]],
)
@example(  # both keys rotated after registration
    steps=[("rotate hub", None), ("rotate casino", None)], values=CARDS[:5]
)
def test_known_values_are_skipped_with_the_same_outcome(
    history: _History, steps: list[tuple[str, object]], values: list[str]
) -> None:
    history.apply(steps)
    everything = _registered(history.deployment, values, skip_known=False)
    assert _registered(history.deployment, values, skip_known=True) == everything
    # The service's own call (it skips what is known) leaves the same tables.
    history.register(values)
    with history.deployment.engine.connect() as connection:
        assert _tables(connection) == everything


def test_a_large_batch_half_known_registers_only_the_rest(history: _History) -> None:
    """From HELD_FROM_VALUES values, registration is held and sorted: the known half is left
    out before it is held, and the outcome is the same."""
    history.apply([("hub", None)])
    values = [f"4970{n:012d}" for n in range(HELD_FROM_VALUES)]
    history.register(values[::2])
    everything = _registered(history.deployment, values, skip_known=False)
    assert _registered(history.deployment, values, skip_known=True) == everything
    assert len(everything["cards"]) == len(values)
