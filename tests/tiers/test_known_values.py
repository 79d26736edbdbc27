"""Registering values the pseudonym index already holds is skipped (``Registrar.skip_known``):
whatever came before — cards registered before the hub existed, the hub's or the partner's
key rotated, cards withdrawn — the tables end as they would if every value were registered
and enrolled again."""

from __future__ import annotations

import contextlib
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, select

from tests.conftest import ACCESS, NOW, statements
from tiers.admin import add_domain, rotate_key
from tiers.deployment import Deployment
from tiers.exchanges import withdraw_customer
from tiers.files import ColumnSpec, tokenise_file
from tiers.identifiers import get_kind
from tiers.storage import sorted_inserts, subjects
from tiers.storage._dialect import DRIVER_IN_CHUNK
from tiers.storage.tables import cards, hub_keys, pseudonym_index, withdrawn
from tiers.storage.tables import subjects as subject_table
from tiers.tokenisation import HELD_FROM_VALUES, Registrar, Tokeniser, registrar_for
from tiers.tokenisation import pseudonymise_values as pseudonymise

CARDS = [f"49701012345600{n:02d}" for n in range(8)]
TABLES: tuple[Table, ...] = (subject_table, pseudonym_index, cards, hub_keys, withdrawn)


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
    with contextlib.suppress(_Undone), deployment.transaction() as connection:
        with ExitStack() as holding:  # the held rows go into the tables when it closes
            held = (
                holding.enter_context(sorted_inserts(connection))
                if len(values) >= HELD_FROM_VALUES
                else None
            )
            tokeniser = Tokeniser.open(deployment, connection, "casino")
            registrar = registrar_for(
                deployment, connection, tokeniser, NOW, held=held, skip_known=skip_known
            )
            for token in tokeniser.tokenise_many(get_kind("card"), values):
                assert isinstance(token, tuple)
                base, mac, _ = token
                registrar.add(base, mac, "card")
            registrar.finish()
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
    with history.deployment.engine.connect() as connection:  # both were rolled back
        assert len(_tables(connection)["cards"]) == len(values[::2])


def test_known_names_the_subjects_indexed_with_that_same_subject(history: _History) -> None:
    """Across several statements on SQLite (more values than one takes): a value indexed with
    another subject, or not indexed, or indexed in another version, is not known."""
    values = [f"4970{n:012d}" for n in range(DRIVER_IN_CHUNK + 7)]
    history.register(values[::3])
    deployment = history.deployment
    with deployment.reading() as connection:
        tokeniser = Tokeniser.open(deployment, connection, "casino")
        tokens = tokeniser.tokenise_many(get_kind("card"), values)
        pairs = [(base, mac) for base, mac, _ in (t for t in tokens if isinstance(t, tuple))]
        domain, version = tokeniser.domain.id, tokeniser.domain_key.version
        registered = {base for base, _ in pairs[::3]}
        assert subjects.known(connection, domain_id=domain, version=version, pairs=pairs) == (
            registered
        )
        wrong = [(bytes(32), mac) for _, mac in pairs[:5]]  # indexed, but with another subject
        assert not subjects.known(connection, domain_id=domain, version=version, pairs=wrong)
        assert not subjects.known(connection, domain_id=domain, version=version + 1, pairs=pairs)
        assert not subjects.known(connection, domain_id=domain, version=version, pairs=[])


def test_a_call_about_known_values_writes_nothing_but_its_log_entry(history: _History) -> None:
    """Nothing but the log: its entry, and the entry's subject index (tiers._subject_index)."""
    history.apply([("hub", None)])
    history.register(CARDS)
    with statements(history.deployment, "INSERT") as inserts:
        history.register(CARDS[::-1])
    assert {s.split()[2] for s in inserts} == {"audit_entries", "audit_subjects"}, inserts


def test_looking_up_stops_once_a_batch_is_mostly_new(history: _History) -> None:
    deployment = history.deployment
    history.register(CARDS[:2])
    with deployment.transaction() as connection, statements(deployment, "pseudonym_index") as seen:
        tokeniser = Tokeniser.open(deployment, connection, "casino")
        registrar = Registrar(connection, tokeniser.domain.id, 1, NOW, batch=3, skip_known=True)
        tokens = tokeniser.tokenise_many(get_kind("card"), CARDS)
        for base, mac, _ in (t for t in tokens if isinstance(t, tuple)):
            registrar.add(base, mac)
        registrar.finish()
        looked_up = [s for s in seen if s.lstrip().startswith("SELECT")]
    # Batches of three: the first held two known (not under a quarter), the second none, so
    # the third (the last two cards, written by finish) was not looked up.
    assert len(looked_up) == 2
    assert not registrar.skip_known
    assert registrar.registered == len(CARDS)


def test_a_file_registered_again_writes_only_its_new_rows(
    history: _History, tmp_path: Path
) -> None:
    """On SQLite its known rows are looked up and left out; on PostgreSQL they are registered
    again, duplicates ignored (see tiers.files): the same tables either way."""
    deployment = history.deployment
    history.apply([("hub", None)])
    rows = [f"4970{n:012d}" for n in range(12_000)]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("card\n" + "\n".join(rows[:9_000]) + "\n")
    second.write_text("card\n" + "\n".join(rows) + "\n")

    def tokenise(source: Path) -> None:
        report = tokenise_file(
            deployment,
            access=ACCESS,
            source=source,
            output=tmp_path / "out.csv",
            domain="casino",
            columns=[ColumnSpec("card", "card")],
        )
        assert report.rows_out == report.rows_in

    tokenise(first)
    with statements(deployment, "FROM pseudonym_index WHERE domain_id") as looked_up:
        tokenise(second)
    with deployment.engine.connect() as connection:
        tables = _tables(connection)
    assert len(tables["cards"]) == len(tables["pseudonym_index"]) == len(rows)
    assert len(tables["hub_keys"]) == len(rows)
    # On SQLite both batches of the second file (10,000 rows, 9,000 known; then 2,000 new) were
    # looked up, two statements and one: the first found enough known to go on looking.
    assert len(looked_up) == (3 if deployment.embedded else 0)
