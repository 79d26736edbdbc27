"""Parts relayed between nodes (tiers.relay): at rest only encrypted under the job's own key,
refused as the job's runner would refuse them, and an altered part fails its job."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from errors import InvalidRequest, RowTampered, StateConflict
from tests.conftest import ACCESS, assert_absent
from tiers.admin import add_domain
from tiers.clients import add_client
from tiers.deployment import Deployment
from tiers.jobs import fail_file_job, open_file_job
from tiers.relay import RunnerRelay, leave_part, relay_completion, relay_part
from tiers.storage import job_relay
from tiers.storage.tables import job_nodes, job_parts, jobs

CLEAR = b"card\n4970101234560001\n4970101234560002\n"


@pytest.fixture
def job(deployment: Deployment) -> tuple[str, RunnerRelay]:
    """A running job whose runner registered on another node ("node-b")."""
    if deployment.embedded:
        pytest.skip("SQLite serves one host: every runner is reached through its socket")
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    issued = add_client(
        deployment, access=ACCESS, name="casino-app", role="partner", domain="casino"
    )
    partner = replace(
        ACCESS, actor="casino-app", role="partner", domain="casino", client_id=issued.client.id,
        now=datetime.now(UTC),  # a job whose heartbeat is old is taken for dead
    )  # fmt: skip
    job_id = open_file_job(deployment, access=partner, domain="casino")
    relay = RunnerRelay.register(deployment, job_id)
    assert relay is not None
    with deployment.transaction() as connection:
        connection.execute(update(job_nodes).values(node="node-b"))
    return job_id, relay


def _node(deployment: Deployment, job_id: str) -> job_relay.JobNode:
    with deployment.engine.connect() as connection:
        node = job_relay.node_of(connection, job_id=job_id)
    assert node is not None
    return node


def test_a_relayed_part_is_at_rest_only_encrypted_and_reaches_the_runner_whole(
    deployment: Deployment, job: tuple[str, RunnerRelay]
) -> None:
    job_id, runner = job
    assert leave_part(deployment, _node(deployment, job_id), job_id=job_id, number=1, data=CLEAR)
    with deployment.engine.connect() as connection:
        stored = connection.execute(select(job_parts.c.data)).scalar_one()
        key = connection.execute(select(job_nodes.c.part_key)).scalar_one()
    assert_absent(bytes(stored), ["4970101234560001", "4970101234560002"], "a relayed part")
    assert CLEAR not in bytes(stored) and len(key) > 40  # a wrapped key, not the key
    fetched = runner.fetch(1)
    assert fetched is not None and CLEAR == fetched[0]
    runner.applied(1, fetched[1])
    with deployment.engine.connect() as connection:
        assert connection.execute(select(job_parts.c.data)).scalar_one() is None  # digest only
    # Sent again to a node: recognised by its digest, not applied twice.
    assert not relay_part(
        deployment, _node(deployment, job_id), job_id=job_id, number=1, data=CLEAR, sha256=None
    )


def test_parts_are_refused_as_the_runner_refuses_them(
    deployment: Deployment, job: tuple[str, RunnerRelay]
) -> None:
    job_id, runner = job
    node = _node(deployment, job_id)
    runner.applied(1, hashlib.sha256(b"card\n").hexdigest())
    cases = {
        "part_conflict": dict(number=1, data=b"other\n", sha256=None),
        "part_out_of_order": dict(number=3, data=b"x\n", sha256=None),
        "part_digest": dict(number=2, data=b"x\n", sha256="0" * 64),
    }
    for code, arguments in cases.items():
        with pytest.raises((StateConflict, InvalidRequest)) as refused:
            relay_part(deployment, node, job_id=job_id, **arguments)
        assert code == refused.value.code
    with pytest.raises(StateConflict) as early:
        relay_completion(deployment, job_id, 2)  # part 2 never came
    assert "part_missing" == early.value.code


def test_an_altered_part_fails_its_authentication(
    deployment: Deployment, job: tuple[str, RunnerRelay]
) -> None:
    job_id, runner = job
    assert leave_part(deployment, _node(deployment, job_id), job_id=job_id, number=1, data=CLEAR)
    with deployment.transaction() as connection:
        stored = bytes(connection.execute(select(job_parts.c.data)).scalar_one())
        altered = stored[:-1] + bytes([stored[-1] ^ 1])
        connection.execute(update(job_parts).values(data=altered))
    with pytest.raises(RowTampered) as refused:
        runner.fetch(1)
    assert "part_tampered" == refused.value.code


def test_a_waiting_part_learns_that_its_job_ended(
    deployment: Deployment, job: tuple[str, RunnerRelay]
) -> None:
    job_id, _ = job
    assert leave_part(deployment, _node(deployment, job_id), job_id=job_id, number=1, data=CLEAR)
    node = _node(deployment, job_id)
    fail_file_job(deployment, job_id, "interrupted")  # its node died: nothing stays
    with deployment.engine.connect() as connection:
        assert [] == connection.execute(select(job_parts.c.job_id)).all()
    with pytest.raises(StateConflict) as ended:
        relay_part(deployment, node, job_id=job_id, number=2, data=b"x\n", sha256=None)
    assert "job_ended" == ended.value.code


def test_a_job_whose_node_stopped_beating_is_failed_by_the_node_that_waits(
    deployment: Deployment, job: tuple[str, RunnerRelay]
) -> None:
    job_id, _ = job
    node = _node(deployment, job_id)
    with deployment.transaction() as connection:
        connection.execute(update(jobs).values(heartbeat_at=datetime(2026, 1, 1, tzinfo=UTC)))
    with pytest.raises(StateConflict) as ended:
        relay_part(deployment, node, job_id=job_id, number=1, data=CLEAR, sha256=None)
    assert "job_ended" == ended.value.code
    with deployment.engine.connect() as connection:
        state = connection.execute(select(jobs.c.state, jobs.c.error_code)).one()
        left = connection.execute(select(job_parts.c.job_id)).all()
    assert (("failed", "interrupted"), []) == (tuple(state), left)
