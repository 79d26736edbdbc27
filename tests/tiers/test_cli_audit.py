from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from sqlalchemy import create_engine, text

from audit import Checkpoint, leaf_hash, parse_entry, verify_consistency, verify_inclusion
from tests.conftest import ACCESS, Cli, Database, assert_absent
from tiers.deployment import Deployment
from tiers.tokenisation import pseudonymise_values

CLEAR = [
    "4970101234560001",
    "4970 1012 3456 0001",
    "camille.bernard@example.fr",
    "BERNARD|CAMILLE|1980-05-17|75011",
]


def last_entry(database: Database) -> tuple[int, dict[str, object]]:
    entries = database.audit_entries()
    return len(entries), entries[-1].as_dict()


@pytest.mark.parametrize(
    ("args", "action", "outcome", "code"),
    [
        (["domain", "add", "shop", "--role", "partner"], "domain_add", "ok", None),
        (["domain", "add", "Bad_Name", "--role", "partner"], "domain_add", "error", "bad_name"),
        (["domain", "add", "casino", "--role", "partner"], "domain_add", "error", "already_exists"),
        (["domain", "list"], "domain_list", "ok", None),
        (["key", "list", "casino"], "key_list", "ok", None),
        (["key", "rotate", "casino"], "key_rotate", "ok", None),
        (["key", "rotate", "nowhere"], "key_rotate", "error", "unknown_domain"),
        (
            ["key", "destroy", "casino", "--version", "1", "--yes"],
            "key_destroy",
            "error",
            "active_key",
        ),
        (["key", "destroy", "casino", "--version", "1"], "key_destroy", "error", "not_confirmed"),
        (
            ["pseudonymise", "--domain", "casino", "--kind", "card", "12345678"],
            "pseudonymise",
            "ok",
            None,
        ),
        (
            ["pseudonymise", "--domain", "casino", "--kind", "iris", "12345678"],
            "pseudonymise",
            "error",
            "unknown_kind",
        ),
        (
            ["pseudonymise", "--domain", "audit", "--kind", "card", "12345678"],
            "pseudonymise",
            "error",
            "wrong_role",
        ),
        (["audit", "log"], "audit_read", "ok", None),
        (["audit", "log", "--since", "yesterday"], "audit_read", "error", "bad_time"),
        (["audit", "verify"], "audit_verify", "ok", None),
        (["audit", "checkpoint"], "audit_checkpoint", "ok", None),
        (["audit", "purge"], "audit_purge", "ok", None),
        (
            [
                "audit",
                "subject",
                "--domain",
                "casino",
                "--kind",
                "card",
                "12345678",
                "--purpose",
                "dpo",
            ],
            "audit_subject",
            "ok",
            None,
        ),
    ],
)
def test_every_operation_leaves_exactly_one_entry(
    initialised_cli: Cli,
    database: Database,
    args: list[str],
    action: str,
    outcome: str,
    code: str | None,
) -> None:
    before = len(database.audit_entries())
    initialised_cli(*args)
    count, entry = last_entry(database)
    assert before + 1 == count
    assert (action, outcome, code) == (entry["action"], entry["outcome"], entry["code"])
    assert str(entry["actor"]).startswith("operator:") and "operator" == entry["role"]


def test_file_operations_leave_one_entry_with_counts(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("card,email\n4970101234560001,camille.bernard@example.fr\nbad,x\n")
    initialised_cli(
        "tokenise-file",
        str(source),
        "-o",
        str(tmp_path / "out.csv"),
        "--domain",
        "casino",
        "--column",
        "card=card",
        "--purpose",
        "monthly exchange",
    )
    _, entry = last_entry(database)
    assert ("tokenise_file", "ok", "monthly exchange") == (
        entry["action"],
        entry["outcome"],
        entry["purpose"],
    )
    assert {"in": 2, "out": 1, "rejected": 1} == entry["counts"]
    initialised_cli(
        "tokenise-file",
        str(tmp_path / "none.csv"),
        "-o",
        str(tmp_path / "o.csv"),
        "--domain",
        "casino",
        "--column",
        "card=card",
    )
    _, entry = last_entry(database)
    assert ("tokenise_file", "error", "no_such_file") == (
        entry["action"],
        entry["outcome"],
        entry["code"],
    )


@pytest.mark.master_key_file
def test_wrong_master_key_attempts_are_logged(initialised_cli: Cli, database: Database) -> None:
    wrong = base64.b64encode(os.urandom(32)).decode()
    before = len(database.audit_entries())
    result = initialised_cli("domain", "list", TIERS_MASTER_KEY=wrong)
    assert 1 == result.exit_code
    count, entry = last_entry(database)
    assert before + 1 == count
    assert ("domain_list", "error", "wrong_master_key") == (
        entry["action"],
        entry["outcome"],
        entry["code"],
    )
    assert wrong not in json.dumps(entry)
    assert "audit log intact" in initialised_cli.ok("audit", "verify").stdout


def tamper(database: Database, statement: str) -> None:
    engine = create_engine(database.url or f"sqlite:///{database.home / 'tiers.db'}")
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.mark.parametrize(
    ("statement", "seq"),
    [
        (
            "UPDATE audit_entries SET entry = replace(entry, 'operator', 'operatoR') WHERE seq = 2",
            2,
        ),
        ("DELETE FROM audit_entries WHERE seq = 3", 3),
        ("UPDATE audit_entries SET actor = 'someone-else' WHERE seq = 4", 4),
        ("UPDATE audit_entries SET hash = entry_hash_of_seq_1 WHERE seq = 5", 5),
        ("UPDATE audit_entries SET other_subject = subject WHERE seq = 4", 4),
    ],
)
def test_verify_names_the_first_bad_entry(
    initialised_cli: Cli, database: Database, statement: str, seq: int
) -> None:
    for value in ("12345678", "87654321"):
        initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", value)
    assert "audit log intact" in initialised_cli.ok("audit", "verify").stdout
    statement = statement.replace(
        "entry_hash_of_seq_1", "(SELECT hash FROM audit_entries WHERE seq = 1)"
    )
    tamper(database, statement)
    result = initialised_cli("audit", "verify")
    assert 1 == result.exit_code
    assert f"entry {seq}:" in result.stderr and "[tampered]" in result.stderr


def test_truncating_the_tail_under_a_checkpoint_is_detected(
    initialised_cli: Cli, database: Database
) -> None:
    initialised_cli.ok("audit", "checkpoint")
    count = len(database.audit_entries())
    tamper(database, f"DELETE FROM audit_entries WHERE seq = {count - 1}")  # noqa: S608
    result = initialised_cli("audit", "verify")
    assert 1 == result.exit_code and f"entry {count - 1}:" in result.stderr


def test_export_verifies_offline_and_tampering_is_located(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "email", CLEAR[2])
    bundle = tmp_path / "log.json"
    exported = initialised_cli.ok("audit", "export", "-o", str(bundle)).stdout
    key = exported.strip().rsplit(" ", 1)[-1]
    # Offline: no home, no database, no master key.
    offline = Cli(Database("sqlite", tmp_path / "elsewhere"))
    result = offline.ok("audit", "verify-export", str(bundle), "--key", key)
    assert "audit log intact" in result.stdout
    assert not (tmp_path / "elsewhere").exists()
    raw = json.loads(bundle.read_text())
    raw["entries"][3]["entry"] = raw["entries"][3]["entry"].replace('"ok"', '"no"')
    bundle.write_text(json.dumps(raw))
    broken = offline("audit", "verify-export", str(bundle))
    assert 1 == broken.exit_code and "entry 3:" in broken.stderr
    wrong_key = offline("audit", "verify-export", str(bundle), "--key", "ed25519:0000000000000000")
    assert 1 == wrong_key.exit_code


def test_subject_lookup_finds_one_customer_without_naming_anyone(
    initialised_cli: Cli, database: Database
) -> None:
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", CLEAR[1])
    initialised_cli.ok("pseudonymise", "--domain", "sncf", "--kind", "card", CLEAR[0])
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", "11112222")
    found = initialised_cli.ok(
        "audit",
        "subject",
        "--domain",
        "casino",
        "--kind",
        "card",
        CLEAR[0],
        "--purpose",
        "access request 17",
        "--json",
    )
    entries = [json.loads(line) for line in found.stdout.splitlines()]
    assert [["casino"], ["sncf"]] == [e["domains"] for e in entries]
    assert 1 == len({e["subject"] for e in entries})
    _, lookup = last_entry(database)
    assert ("audit_subject", "access request 17") == (lookup["action"], lookup["purpose"])
    assert entries[0]["subject"] == lookup["subject"]
    assert_absent(found.stdout.encode(), CLEAR, "the look-up output")


def test_log_injection_is_refused_and_old_entries_are_neutralised(
    initialised_cli: Cli, database: Database
) -> None:
    purpose = "campaign\r\n2026-01-01 admin login ok\x1b[2J"
    refused = initialised_cli(
        "pseudonymise", "--domain", "casino", "--kind", "card", "12345678", "--purpose", purpose
    )
    assert 0 != refused.exit_code and "[bad_purpose]" in refused.stderr
    assert "admin login" not in refused.stderr
    entry = database.audit_entries()[-1]
    assert ("bad_purpose", "unspecified") == (entry.code, entry.purpose)
    # An entry written before purposes were checked still prints on one line.
    opened = Deployment.open(database.settings())
    try:
        old = replace(ACCESS, purpose=purpose)
        pseudonymise_values(opened, access=old, domain="casino", kind="card", values=["12345678"])
    finally:
        opened.close()
    assert purpose == database.audit_entries()[-1].purpose
    listing = initialised_cli.ok("audit", "log").stdout
    assert "\x1b" not in listing and "\r" not in listing
    as_json = initialised_cli.ok("audit", "log", "--json").stdout
    assert all(json.loads(line) for line in as_json.splitlines())


def test_report_is_a_readable_html_page(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "email", CLEAR[2])
    initialised_cli("pseudonymise", "--domain", "nowhere", "--kind", "card", "12345678")
    today = datetime.now().date().isoformat()
    report = tmp_path / "report.html"
    initialised_cli.ok(
        "audit", "report", "--since", "2026-01-01", "--until", "2099-01-01", "-o", str(report)
    )
    html = report.read_text()
    assert html.startswith("<!doctype html>")
    images = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2  # calls, identifiers: embedded, no external resource
    for image in images:
        chart = ElementTree.fromstring(base64.b64decode(image))  # noqa: S314 - our own chart
        assert list(chart.iter("{http://www.w3.org/2000/svg}rect"))
        assert today in base64.b64decode(image).decode()  # the day is a bar's label
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "audit log intact" in html
    assert "unknown_domain" in html and "pseudonymise" in html and today in html
    # the identifiers processed, not only the calls: one value pseudonymised, one refused
    # (the set-up's own entries are calls too)
    assert re.search(r"\d+ calls, 1 refused or failed; 1 identifiers processed\.", html)
    assert_absent(html.encode(), CLEAR, "the report")


def test_the_log_export_and_report_hold_no_clear_identifier(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", CLEAR[1])
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "email", CLEAR[2])
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "person", CLEAR[3])
    initialised_cli.ok(
        "audit", "subject", "--domain", "casino", "--kind", "email", CLEAR[2], "--purpose", "dpo"
    )
    initialised_cli.ok("audit", "export", "-o", str(tmp_path / "log.json"))
    initialised_cli.ok(
        "audit",
        "report",
        "--since",
        "2026-01-01",
        "--until",
        "2099-01-01",
        "-o",
        str(tmp_path / "r.html"),
    )
    everything = (
        database.stored_bytes()
        + (tmp_path / "log.json").read_bytes()
        + (tmp_path / "r.html").read_bytes()
    )
    assert_absent(everything, [*CLEAR, "CAMILLE", "camille"], "the log, export or report")


def _checkpoint_sizes(database: Database) -> list[int]:
    engine = create_engine(database.url or f"sqlite:///{database.home / 'tiers.db'}")
    with engine.connect() as connection:
        sizes = [
            row[0]
            for row in connection.execute(
                text("SELECT tree_size FROM audit_checkpoints ORDER BY tree_size")
            )
        ]
    engine.dispose()
    return sizes


def test_every_command_ends_under_a_checkpoint(initialised_cli: Cli, database: Database) -> None:
    before = len(database.audit_entries())
    for _ in range(3):
        initialised_cli("domain", "list", TIERS_AUDIT_CHECKPOINT_EVERY="1000")
    # Each command's entry is signed before the command ends, whatever the count setting.
    assert [before + 1, before + 2, before + 3] == _checkpoint_sizes(database)[-3:]
    assert "audit log intact" in initialised_cli.ok("audit", "verify").stdout


def test_proofs_verify_offline_against_signed_checkpoints(initialised_cli: Cli) -> None:
    first = initialised_cli.ok("audit", "checkpoint").stdout
    old_size = int(first.split("size ")[1].split(",")[0])
    for value in ("12345678", "23456789", "34567890"):
        initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", value)
    initialised_cli.ok("audit", "checkpoint")
    inclusion = json.loads(initialised_cli.ok("audit", "proof", "--seq", "2").stdout)
    (signed,) = [Checkpoint.from_dict(c) for c in inclusion["checkpoints"]]
    entry = inclusion["entry"].encode()
    assert bytes.fromhex(inclusion["leaf_hash"]) == leaf_hash(entry)
    assert 2 == parse_entry(entry).seq
    nodes = [bytes.fromhex(n) for n in inclusion["proof"]]
    assert verify_inclusion(2, signed.tree_size, leaf_hash(entry), nodes, signed.root)
    assert len(nodes) <= signed.tree_size.bit_length()
    consistency = json.loads(
        initialised_cli.ok("audit", "proof", "--from-size", str(old_size)).stdout
    )
    old, new = (Checkpoint.from_dict(c) for c in consistency["checkpoints"])
    nodes = [bytes.fromhex(n) for n in consistency["proof"]]
    assert verify_consistency(old.tree_size, new.tree_size, old.root, new.root, nodes)
    missing = initialised_cli("audit", "proof", "--from-size", "100000")
    assert 1 == missing.exit_code and "[no_checkpoint]" in missing.stderr
