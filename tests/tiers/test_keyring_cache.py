"""Unwrapped keyrings kept by a process: reused while the keys are unchanged, never after."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from errors import KeyDestroyed, NotFound
from tests.conftest import ACCESS, statements
from tiers import _keyrings as keyrings
from tiers import sealing
from tiers.admin import add_domain, destroy_key, rotate_key
from tiers.deployment import Deployment
from tiers.pseudonyms import parse_for_domain
from tiers.settings import Settings
from tiers.storage import domains as domain_repo
from tiers.storage import keystore
from tiers.storage.domains import DomainRecord
from tiers.storage.tables import domains
from tiers.tokenisation import pseudonymise_values

CARD = "4970101234560001"


@pytest.fixture
def other(settings: Settings, deployment: Deployment) -> Iterator[Deployment]:
    """A second deployment on the same database: another worker or the operator's CLI."""
    opened = Deployment.open(settings)
    yield opened
    opened.close()


def _casino_ring(deployment: Deployment) -> keyrings.Keyring:
    with deployment.transaction() as connection:
        return deployment.domain_keyring(connection, deployment.domain(connection, "casino"))


def _generation(deployment: Deployment) -> str | None:
    with deployment.engine.connect() as connection:
        return keystore.generation(connection)


def test_a_keyring_is_unwrapped_once_while_the_keys_do_not_change(deployment: Deployment) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    first = _casino_ring(deployment)
    pseudonymise_values(deployment, domain="casino", kind="card", values=[CARD], access=ACCESS)
    assert _casino_ring(deployment) is first


def test_a_key_destroyed_by_another_process_stops_working_at_once(
    deployment: Deployment, other: Deployment
) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    (old,) = pseudonymise_values(
        deployment, domain="casino", kind="card", values=[CARD], access=ACCESS
    )
    assert isinstance(old, str) and old.startswith("casino.v1.")
    assert _casino_ring(deployment).active_version == 1  # kept by this process

    rotate_key(other, domain="casino", access=ACCESS)
    (new,) = pseudonymise_values(
        deployment, domain="casino", kind="card", values=[CARD], access=ACCESS
    )
    assert isinstance(new, str) and new.startswith("casino.v2.")

    destroy_key(other, domain="casino", version=1, access=ACCESS)
    with pytest.raises(KeyDestroyed):
        parse_for_domain(old, domain="casino", keyring=_casino_ring(deployment))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE keys SET state_changed_at = state_changed_at WHERE owner = 'casino'",
        "UPDATE keys SET wrapped = NULL WHERE owner = 'nobody'",  # no row: still a change
        "DELETE FROM keys WHERE owner = 'nobody'",
        "INSERT INTO keys (owner, purpose, version, state, wrapped, created_at, "
        "state_changed_at) SELECT owner, 'spare', version, state, wrapped, created_at, "
        "state_changed_at FROM keys WHERE owner = 'casino'",
    ],
)
def test_any_change_to_the_keys_by_hand_replaces_the_generation(
    deployment: Deployment, statement: str
) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    kept = _casino_ring(deployment)
    before = _generation(deployment)
    assert before is not None
    with deployment.engine.begin() as connection:
        connection.exec_driver_sql(statement)
    if "nobody" in statement and deployment.engine.dialect.name == "sqlite":
        # SQLite's triggers are per row: a statement that changes no row changes nothing.
        assert _generation(deployment) == before
        return
    assert _generation(deployment) not in (before, None)
    assert _casino_ring(deployment) is not kept


def test_a_rolled_back_change_never_validates_a_kept_keyring(
    deployment: Deployment, other: Deployment
) -> None:
    """The generation is random: a process that saw a change that was then rolled back cannot
    mistake a later committed change for it."""
    add_domain(deployment, name="casino", role="partner", access=ACCESS)

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), deployment.transaction() as connection:
        domain = deployment.domain(connection, "casino")
        ring = deployment.domain_keyring(connection, domain)
        keyrings.rotate_keyring(connection, deployment.master, ring, now=ACCESS.now)
        # Seen inside the transaction, and kept under the transaction's generation.
        assert deployment.domain_keyring(connection, domain).active_version == 2
        raise Abandon

    rotate_key(other, domain="casino", access=ACCESS)  # the same change, committed elsewhere
    # Same versions and states as the abandoned change, but other material: this process must
    # use the committed version 2, not the one it unwrapped inside the abandoned transaction.
    mine = pseudonymise_values(
        deployment, domain="casino", kind="card", values=[CARD], access=ACCESS
    )
    theirs = pseudonymise_values(other, domain="casino", kind="card", values=[CARD], access=ACCESS)
    assert mine == theirs
    destroy_key(other, domain="casino", version=1, access=ACCESS)
    ring = _casino_ring(deployment)
    assert ring.active_version == 2
    assert ring.versions[1].state.value == "destroyed"
    assert 1 not in ring.materials


@given(changes=st.lists(st.sampled_from(["rotate", "read"]), min_size=1, max_size=6))
def test_every_committed_rotation_is_seen_by_the_next_transaction(
    deployment: Deployment, other: Deployment, changes: list[str]
) -> None:
    if _domain_missing(deployment):
        add_domain(deployment, name="casino", role="partner", access=ACCESS)
    expected = _casino_ring(other).active_version
    for change in changes:
        if change == "rotate":
            rotate_key(other, domain="casino", access=ACCESS)
            expected += 1
        assert _casino_ring(deployment).active_version == expected


def _domain_missing(deployment: Deployment) -> bool:
    with deployment.engine.connect() as connection:
        return keystore.load(connection, owner="casino", purpose="pseudonym") == []


def test_a_transaction_reads_the_generation_once_and_the_next_one_afresh(
    deployment: Deployment, other: Deployment
) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    with statements(deployment, "key_generation") as reads:
        # A read-only transaction: on SQLite, the other writer does not wait for it.
        with deployment.reading() as connection:
            domain = deployment.domain(connection, "casino")
            for _ in range(3):
                deployment.domain_keyring(connection, domain)
            deployment.base_keyring(connection)
            assert len(reads) == 1
            rotate_key(other, domain="casino", access=ACCESS)
            # Served under the generation this transaction read.
            assert deployment.domain_keyring(connection, domain).active_version == 1
        assert _casino_ring(deployment).active_version == 2
        assert len(reads) == 2


def _domain(deployment: Deployment, name: str) -> DomainRecord:
    with deployment.transaction() as connection:
        return deployment.domain(connection, name)


def _hub(deployment: Deployment) -> DomainRecord | None:
    with deployment.transaction() as connection:
        return deployment.hub_domain(connection)


def test_domain_records_are_read_once_while_nothing_changes(deployment: Deployment) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    add_domain(deployment, name="hub", role="hub", access=ACCESS)
    with statements(deployment, "FROM domains") as reads:
        for _ in range(3):
            assert _domain(deployment, "casino").role == "partner"
            hub = _hub(deployment)
            assert hub is not None and hub.name == "hub"
        assert len(reads) == 2  # the partner's record, then the hub's
        with pytest.raises(NotFound):
            _domain(deployment, "nowhere")
        assert len(reads) == 3  # a name that is not there is asked each time


def _change_casino(deployment: Deployment, **values: object) -> None:
    with deployment.engine.begin() as connection:
        connection.execute(update(domains).where(domains.c.name == "casino").values(**values))
        record = domain_repo.get(connection, name="casino")
        assert record is not None
        sealing.seal_domain(connection, deployment.sealer(), record)


def test_a_domain_changed_by_hand_is_seen_by_the_next_transaction(
    deployment: Deployment,
) -> None:
    """Changed as the service would (the row, then its seal: tiers.sealing), outside it."""
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    assert _domain(deployment, "casino").card_luhn is False
    _change_casino(deployment, card_luhn=True)
    assert _domain(deployment, "casino").card_luhn is True
    _change_casino(deployment, role="hub")
    hub = _hub(deployment)
    assert hub is not None and hub.name == "casino"


def test_a_hub_added_by_another_process_is_seen_by_the_next_transaction(
    deployment: Deployment, other: Deployment
) -> None:
    assert _hub(deployment) is None  # kept: there is no hub
    add_domain(other, name="hub", role="hub", access=ACCESS)
    hub = _hub(deployment)
    assert hub is not None and hub.name == "hub"


def test_a_domain_added_in_a_rolled_back_transaction_is_never_seen_again(
    deployment: Deployment,
) -> None:
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), deployment.transaction() as connection:
        assert deployment.hub_domain(connection) is None  # kept under the committed generation
        ghost = domain_repo.add(
            connection, name="ghost", role="hub", card_luhn=False, now=ACCESS.now
        )
        sealing.seal_domain(connection, deployment.sealer(), ghost)
        assert deployment.domain(connection, "ghost").name == "ghost"  # seen inside
        hub = deployment.hub_domain(connection)
        assert hub is not None and hub.name == "ghost"
        raise Abandon

    with pytest.raises(NotFound):
        _domain(deployment, "ghost")
    assert _hub(deployment) is None


def test_a_new_generation_drops_every_kept_keyring_at_once(
    deployment: Deployment, other: Deployment
) -> None:
    """A destroyed version's material is not left in memory in a keyring no request asks for
    again: the first transaction under a new generation drops all that was kept."""
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    add_domain(deployment, name="galeries", role="partner", access=ACCESS)
    kept = _casino_ring(deployment)
    assert 1 in kept.materials
    old_ring = weakref.ref(kept)
    del kept
    rotate_key(other, domain="casino", access=ACCESS)
    destroy_key(other, domain="casino", version=1, access=ACCESS)
    gc.collect()
    assert old_ring() is not None  # kept until a transaction sees the new generation
    pseudonymise_values(deployment, domain="galeries", kind="card", values=[CARD], access=ACCESS)
    gc.collect()
    assert old_ring() is None  # nothing holds the destroyed version's material any more
    assert _casino_ring(deployment).active_version == 2
    # The checkpoint signer is kept the same way: once per generation, dropped with it.
    with deployment.transaction() as connection:
        signer = deployment.signer(connection)
        assert signer is deployment.signer(connection)
    rotate_key(other, domain="galeries", access=ACCESS)
    with deployment.transaction() as connection:
        assert signer is not deployment.signer(connection)
