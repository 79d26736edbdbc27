"""When checkpoints are signed: every ``audit_checkpoint_every`` entries of a process (in the
committing thread, or by waking the service's checkpoint thread), each into the store outside
the database and the database alike."""

from __future__ import annotations

import pytest

from tests.conftest import ACCESS, Database
from tiers.admin import add_domain, initialise
from tiers.audit_ops import verify_stored
from tiers.deployment import Deployment
from tiers.storage import audit_log


@pytest.fixture
def every_two(database: Database) -> Deployment:
    settings = database.settings(audit_checkpoint_every=2)
    initialise(settings, access=ACCESS)
    return Deployment.open(settings)


def _sizes(deployment: Deployment) -> tuple[list[int], list[int]]:
    with deployment.reading() as connection:
        outside = [r.size for r in deployment.checkpoint_store(connection).records()]
        inside = [c.tree_size for c in audit_log.checkpoints(connection)]
    return outside, inside


def test_a_checkpoint_is_signed_every_n_entries_of_a_process(every_two: Deployment) -> None:
    start, _ = _sizes(every_two)
    for name in ("casino", "sncf", "fnac", "darty"):
        add_domain(every_two, access=ACCESS, name=name, role="partner")
    outside, inside = _sizes(every_two)
    first = start[-1]
    assert [first + 2, first + 4] == outside[len(start) :]
    assert set(outside) <= set(inside)
    # Each is kept twice (database and store) and counted once.
    assert len(outside) == verify_stored(every_two, access=ACCESS).checkpoints
    every_two.close()


def test_a_service_is_woken_instead_of_signing_in_the_request(every_two: Deployment) -> None:
    woken: list[int] = []
    every_two.checkpoint_due = lambda: woken.append(1)
    before, _ = _sizes(every_two)
    for name in ("casino", "sncf"):
        add_domain(every_two, access=ACCESS, name=name, role="partner")
    assert ([1], before) == (woken, _sizes(every_two)[0])  # the thread signs, not the request
    signed = every_two.sign_pending()
    assert signed is not None and before[-1] + 2 == signed.size
    every_two.close()


def test_entries_another_process_signed_count_no_more(
    every_two: Deployment, database: Database
) -> None:
    """When another process has signed everything, this one's count starts again: it is not
    woken, entry after entry, to find nothing to sign."""
    woken: list[int] = []
    every_two.checkpoint_due = lambda: woken.append(1)
    add_domain(every_two, access=ACCESS, name="casino", role="partner")
    other = Deployment.open(database.settings(audit_checkpoint_every=2))  # signs on opening
    other.close()
    assert every_two.sign_pending() is None  # nothing left to sign
    add_domain(every_two, access=ACCESS, name="sncf", role="partner")
    assert [] == woken  # one entry since: below the count
    every_two.close()
