"""The link and policy commands, through the real command line."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import Cli, Database
from tiers.policies import default_policy


@pytest.fixture
def alliance_cli(cli: Cli) -> Cli:
    cli.ok("init")
    for name in ("casino", "galeries-lafayette", "sncf"):
        cli.ok("domain", "add", name, "--role", "partner")
    cli.ok("domain", "add", "hub", "--role", "hub")
    return cli


def hub_keys(database: Database, kind: str) -> list[str]:
    engine = create_engine(database.url or f"sqlite:///{database.home / 'tiers.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT version, value FROM hub_keys WHERE kind = :k"), {"k": kind}
        ).all()
    engine.dispose()
    return [f"hub.v{v}.{base64.b32encode(bytes(x)).decode().lower()}" for v, x in rows]


def test_link_commands_walk_a_customer_through_the_rules(
    alliance_cli: Cli, database: Database
) -> None:
    cli = alliance_cli
    cli.ok("card", "enrol", "--domain", "casino", "10000001", "--date", "2026-01-01T00:00:00+00:00")
    cli.ok(
        "card",
        "enrol",
        "--domain",
        "galeries-lafayette",
        "20000001",
        "--date",
        "2026-02-01T00:00:00+00:00",
    )
    linked = cli.ok(
        "card",
        "associate",
        "10000001",
        "20000001",
        "--domain",
        "casino",
        "--other-domain",
        "galeries-lafayette",
    )
    assert (
        "attach.first_enrolment (changed" in linked.stdout
        and "this partner is the SG" in linked.stdout
    )
    (alliance,) = hub_keys(database, "customer")
    shown = cli.ok("link", "show", alliance).stdout
    assert "attached to: casino" in shown and "galeries-lafayette" in shown
    moved = cli.ok("customer", "transfer", "20000001", "--domain", "galeries-lafayette")
    assert "transfer.customer_choice" in moved.stdout
    refused = cli(
        "card", "associate", "10000001", "99999999", "--domain", "casino", "--other-domain", "sncf"
    )
    assert 1 == refused.exit_code and "[association_refused]" in refused.stderr
    assert "unknown_other_card" == database.audit_entries()[-1].code  # the log says why
    unlinked = cli.ok("card", "dissociate", "10000001", "--domain", "casino")
    assert "unlink.dissolve" in unlinked.stdout
    missing = cli("link", "show", alliance)
    assert 1 == missing.exit_code and "[unknown_key]" in missing.stderr


def test_policy_check_diff_and_apply(alliance_cli: Cli, database: Database, tmp_path: Path) -> None:
    cli = alliance_cli
    cli.ok("card", "enrol", "--domain", "casino", "10000001")
    cli.ok("card", "enrol", "--domain", "galeries-lafayette", "20000001")
    cli.ok(
        "card",
        "associate",
        "10000001",
        "20000001",
        "--domain",
        "casino",
        "--other-domain",
        "galeries-lafayette",
    )
    bad = tmp_path / "bad.toml"
    bad.write_bytes(default_policy().replace(b"allow_merge = true", b"allow_merge = 1"))
    refused = cli("policy", "check", str(bad))
    assert 1 == refused.exit_code and "allow_merge (line 13): must be a bool" in refused.stderr
    variant = tmp_path / "no-casino.toml"
    variant.write_bytes(default_policy().replace(b'"casino", ', b""))
    assert "valid:" in cli.ok("policy", "check", str(variant)).stdout
    before = database.rows()
    diff = json.loads(cli.ok("policy", "diff", str(variant)).stdout)
    assert {"policy.sg_withdrawn": 1} == diff["would re-attach"]
    assert before == database.rows()  # a dry run changes nothing
    applied = json.loads(cli.ok("policy", "apply", str(variant)).stdout)
    assert {"policy.sg_withdrawn": 1} == applied["re-attached"]
    (alliance,) = hub_keys(database, "customer")
    assert "attached to: galeries-lafayette" in cli.ok("link", "show", alliance).stdout
    actions = [e.action for e in database.audit_entries()]
    assert ["policy_check", "policy_check", "policy_diff", "policy_apply"] == [
        a for a in actions if a.startswith("policy_")
    ]
