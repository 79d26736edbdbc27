"""In the running service, checkpoints are signed every ``audit_checkpoint_seconds`` even while
a witness is slow to answer: witnesses have a thread of their own."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from api import create_app
from tests.conftest import ACCESS, Database
from tests.witnesses import KEY, misbehaving
from tiers.admin import initialise
from tiers.clients import add_client
from tiers.deployment import Deployment
from tiers.storage.checkpoint_store import FILE_NAME


def _newest_signed(database: Database) -> int:
    """The size of the store's newest checkpoint, read from the file (opening a deployment
    would sign what is pending itself)."""
    lines = (database.home / "checkpoints" / FILE_NAME).read_text().splitlines()
    notes = [json.loads(line) for line in lines[1:]]
    return max(int(n["note"].split("\n")[1]) for n in notes if n["kind"] == "checkpoint")


def test_a_slow_witness_does_not_delay_signatures(database: Database) -> None:
    with misbehaving("slow") as port:  # it answers after 3 s
        settings = database.settings(
            argon2_profile="test",
            witnesses=f"http://127.0.0.1:{port} {KEY.encode()}",
            witness_timeout_seconds=5,
            audit_checkpoint_seconds=0.2,
        )
        initialise(settings, access=ACCESS)
        deployment = Deployment.open(settings)
        token = add_client(deployment, access=ACCESS, name="dpo", role="auditor").token
        deployment.close()
        with TestClient(create_app(settings)) as http:
            time.sleep(0.6)  # the witness thread now waits on the slow witness
            assert (
                200
                == http.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code
            )
            entries = len(database.audit_entries())
            deadline = time.monotonic() + 1.5
            while _newest_signed(database) < entries and time.monotonic() < deadline:
                time.sleep(0.05)
            assert entries <= _newest_signed(database), "a slow witness held the signer up"
