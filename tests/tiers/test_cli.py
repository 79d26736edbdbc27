from __future__ import annotations

import base64
import io
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ACCESS, Cli, Database, assert_absent
from tiers import blind
from tiers.auditing import Access
from tiers.cli._common import counted
from tiers.deployment import Deployment
from tiers.jobs import run_file_job
from tiers.storage import clients as client_repo

PSEUDONYM = re.compile(r"[a-z][a-z0-9-]{1,31}\.v[0-9]+\.[a-z2-7]{32}")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.master_key_file
def test_init_generates_a_development_key_and_warns_loudly(cli: Cli, database: Database) -> None:
    result = cli.ok("init")
    assert "WARNING" in result.stderr and "DEVELOPMENT" in result.stderr
    assert (database.home / "master.key").exists()
    assert "tiers is initialised" in cli.ok("init").stdout


def test_domain_add_and_list(initialised_cli: Cli) -> None:
    listing = initialised_cli.ok("domain", "list").stdout
    for name in ("casino", "sncf", "hub"):
        assert name in listing


def test_a_blind_only_domain_is_added_listed_and_refuses_clear_values(
    initialised_cli: Cli, database: Database
) -> None:
    added = initialised_cli.ok("domain", "add", "galeries", "--role", "partner", "--blind-only")
    assert "added domain galeries (partner, blind-only)" in added.stdout
    rows = json.loads(initialised_cli.ok("domain", "list", "--json").stdout)
    assert {r["name"]: r["blind only"] for r in rows}["galeries"] == "yes"
    assert {r["name"]: r["blind only"] for r in rows}["casino"] == "no"
    before = database.rows()["subjects"]
    refused = initialised_cli("pseudonymise", "--domain", "galeries", "--kind", "card", "12345678")
    assert refused.exit_code == 1 and "[blind_only]" in one_error_line(refused.stderr)
    assert "12345678" not in refused.stderr and before == database.rows()["subjects"]
    hub = initialised_cli("domain", "add", "other-hub", "--role", "hub", "--blind-only")
    assert hub.exit_code == 1 and "[bad_role]" in one_error_line(hub.stderr)


def test_the_operator_prints_a_domain_s_blind_public_keys(
    initialised_cli: Cli, database: Database
) -> None:
    initialised_cli.ok("key", "rotate", "casino")
    rows = json.loads(initialised_cli.ok("key", "blind-public", "casino", "--json").stdout)
    deployment = Deployment.open(database.settings())
    try:
        published = blind.blind_keys(deployment, access=ACCESS, domain="casino")
    finally:
        deployment.close()
    assert [(r["version"], r["state"]) for r in rows] == [("2", "active"), ("1", "verify-only")]
    assert [base64.urlsafe_b64decode(r["public"] + "=") for r in rows] == [
        key.public for key in published.keys
    ]
    assert {(r["luhn"], r["phone region"]) for r in rows} == {("no", "FR")}
    entry = database.audit_entries()[-2]  # the last is the API-side look-up above
    assert (entry.action, entry.actor.split(":")[0]) == ("blind_keys", "operator")
    unknown = initialised_cli("key", "blind-public", "nowhere")
    assert unknown.exit_code == 1 and "[unknown_domain]" in one_error_line(unknown.stderr)


def test_pseudonymise_prints_one_line_per_value_in_order(initialised_cli: Cli) -> None:
    result = initialised_cli(
        "pseudonymise",
        "--domain",
        "casino",
        "--kind",
        "card",
        "4970 1012-3456",
        "4970101234 56",
        "x",
        "",
        "12345678",
    )
    lines = result.stdout.splitlines()
    assert result.exit_code == 2
    assert len(lines) == 5
    assert PSEUDONYM.fullmatch(lines[0]) and lines[0] == lines[1]
    assert lines[2:4] == ["error:bad_character", "error:empty"]
    assert lines[0].startswith("casino.v1.") and lines[4] != lines[0]


def test_pseudonymise_reads_stdin_and_separates_domains(initialised_cli: Cli) -> None:
    stdin = "jeanne@example.fr\r\nJEANNE@example.FR\n"
    casino = initialised_cli.ok(
        "pseudonymise", "--domain", "casino", "--kind", "email", input=stdin
    )
    sncf = initialised_cli.ok("pseudonymise", "--domain", "sncf", "--kind", "email", input=stdin)
    c, s = casino.stdout.splitlines(), sncf.stdout.splitlines()
    assert c[0] == c[1] and s[0] == s[1] and c[0] != s[0]
    assert c[0].startswith("casino.v1.") and s[0].startswith("sncf.v1.")


def test_a_byte_order_mark_on_stdin_is_not_part_of_the_first_value(
    initialised_cli: Cli,
) -> None:
    """What Notepad and PowerShell put before UTF-8 text."""
    plain = initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", "10000001")
    marked = initialised_cli.ok(
        "pseudonymise", "--domain", "casino", "--kind", "card", input=b"\xef\xbb\xbf10000001\r\n"
    )
    assert marked.stdout == plain.stdout


def test_undecodable_stdin_line_is_reported_not_dropped(initialised_cli: Cli) -> None:
    result = initialised_cli(
        "pseudonymise",
        "--domain",
        "casino",
        "--kind",
        "card",
        input=b"12345678\n\xff\xfe\n87654321\n",
    )
    lines = result.stdout.splitlines()
    assert result.exit_code == 2
    assert len(lines) == 3 and lines[1].startswith("error:")


@pytest.mark.parametrize(
    ("count", "words", "said"),
    [
        (0, ("row",), "0 rows"),
        (1, ("row",), "1 row"),
        (2, ("row",), "2 rows"),
        (1, ("entry", "entries"), "1 entry"),
        (3, ("entry", "entries"), "3 entries"),
    ],
)
def test_counts_are_said_in_the_right_number(count: int, words: tuple[str, ...], said: str) -> None:
    assert said == counted(count, *words)


def test_key_rotate_list_destroy(initialised_cli: Cli) -> None:
    before = initialised_cli.ok(
        "pseudonymise", "--domain", "casino", "--kind", "card", "12345678"
    ).stdout
    assert "1 pseudonym re-derived" in initialised_cli.ok("key", "rotate", "casino").stdout
    after = initialised_cli.ok(
        "pseudonymise", "--domain", "casino", "--kind", "card", "12345678"
    ).stdout
    assert before.startswith("casino.v1.") and after.startswith("casino.v2.")
    listing = initialised_cli.ok("key", "list", "casino").stdout
    assert "verify-only" in listing and "active" in listing
    refused = initialised_cli("key", "destroy", "casino", "--version", "1")
    assert refused.exit_code == 1 and "not_confirmed" in one_error_line(refused.stderr)
    initialised_cli.ok("key", "destroy", "casino", "--version", "1", "--yes")
    assert "destroyed" in initialised_cli.ok("key", "list", "casino").stdout
    again = initialised_cli("key", "destroy", "casino", "--version", "1", "--yes")
    assert again.exit_code == 1 and "[key_destroyed]" in one_error_line(again.stderr)


def test_tokenise_file_exit_codes_and_files(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("card,email,name\n4970 1012 3456,lea.roux@example.fr,Léa Roux\nbad,x,y\n")
    out = tmp_path / "out.csv"
    result = initialised_cli(
        "tokenise-file",
        str(source),
        "-o",
        str(out),
        "--domain",
        "casino",
        "--column",
        "card=card",
        "--column",
        "email=email",
    )
    assert result.exit_code == 2
    assert "line 3: column card: bad_character" in result.stderr
    assert "line 3: column email: bad_format" in result.stderr
    assert out.read_text().splitlines()[0] == "card,email"
    clean = tmp_path / "clean.csv"
    clean.write_text("card,email,name\n4970 1012 3456,lea.roux@example.fr,Léa Roux\n")
    initialised_cli.ok(
        "tokenise-file",
        str(clean),
        "-o",
        str(tmp_path / "o2.csv"),
        "--domain",
        "casino",
        "--column",
        "card=card",
        "--keep",
        "name",
        "--rejects",
        str(tmp_path / "r2.csv"),
    )
    assert (tmp_path / "r2.csv").read_text().splitlines() == ["line,column,code"]
    assert "Léa Roux" in (tmp_path / "o2.csv").read_text()
    leaks = (
        database.stored_bytes() + out.read_bytes() + (tmp_path / "out.csv.rejects.csv").read_bytes()
    )
    assert_absent(
        leaks,
        ["4970 1012 3456", "497010123456", "lea.roux@example.fr", "Léa Roux"],
        "the database or the outputs",
    )
    assert_absent(
        result.stdout.encode() + result.stderr.encode(),
        ["4970 1012 3456", "lea.roux@example.fr", "bad,x"],
        "the command output",
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["domain", "add", "Bad_Name", "--role", "partner"], "bad_name"),
        (["domain", "add", "casino", "--role", "partner"], "already_exists"),
        (["domain", "add", "shop", "--role", "king"], "bad_role"),
        (["pseudonymise", "--domain", "nowhere", "--kind", "card", "12345678"], "unknown_domain"),
        (["pseudonymise", "--domain", "casino", "--kind", "iris", "12345678"], "unknown_kind"),
        (["key", "rotate", "nowhere"], "unknown_domain"),
        (["key", "destroy", "casino", "--version", "1", "--yes"], "active_key"),
        (["key", "destroy", "casino", "--version", "9", "--yes"], "unknown_key_version"),
    ],
)
def test_bad_commands_give_one_error_line_and_change_nothing(
    initialised_cli: Cli, database: Database, args: list[str], code: str
) -> None:
    before = database.rows()
    result = initialised_cli(*args)
    assert result.exit_code == 1
    assert f"[{code}]" in one_error_line(result.stderr)
    assert result.stdout == ""
    assert before == database.rows()


@pytest.mark.parametrize(
    ("content", "extra", "code"),
    [
        (b"", [], "empty_file"),
        (b"card,email\n", [], "no_rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", [], "not_csv"),
        (b"card,email\n12345678,a@b.fr\n", ["--column", "iban=card"], "unknown_column"),
        (b"card,email\n12345678,a@b.fr\n", ["--column", "email=iris"], "unknown_kind"),
        (b"card,email\n12345678,a@b.fr\n", ["--column", "nokind"], "bad_column_spec"),
    ],
)
def test_bad_files_give_one_error_line_and_change_nothing(
    initialised_cli: Cli,
    database: Database,
    tmp_path: Path,
    content: bytes,
    extra: list[str],
    code: str,
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    before = database.rows()
    result = initialised_cli(
        "tokenise-file",
        str(source),
        "-o",
        str(tmp_path / "out.csv"),
        "--domain",
        "casino",
        "--column",
        "card=card",
        *extra,
    )
    assert result.exit_code == 1
    assert f"[{code}]" in one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "var"]
    assert before == database.rows()


def test_missing_input_file_is_one_clear_error(initialised_cli: Cli, tmp_path: Path) -> None:
    result = initialised_cli(
        "tokenise-file",
        str(tmp_path / "none.csv"),
        "-o",
        str(tmp_path / "o.csv"),
        "--domain",
        "casino",
        "--column",
        "card=card",
    )
    assert result.exit_code == 1 and "[no_such_file]" in one_error_line(result.stderr)


@pytest.mark.master_key_file
def test_wrong_master_key_is_one_clear_error(initialised_cli: Cli, database: Database) -> None:
    before = database.rows()
    wrong = base64.b64encode(os.urandom(32)).decode()
    result = initialised_cli(
        "pseudonymise", "--domain", "casino", "--kind", "card", "12345678", TIERS_MASTER_KEY=wrong
    )
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "[wrong_master_key]" in line and wrong not in line
    assert result.stdout == ""
    assert before == database.rows()


@pytest.mark.master_key_file
def test_commands_before_init_say_so(cli: Cli) -> None:
    result = cli("domain", "list")
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "[no_master_key]" in line and "tiers init" in line


def test_job_purge_and_delete_commands(
    initialised_cli: Cli, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERS_ARGON2_PROFILE", "test")
    initialised_cli.ok("client", "add", "casino-app", "--role", "partner", "--domain", "casino")
    deployment = Deployment.open(database.settings())
    try:
        with deployment.engine.connect() as connection:
            client = client_repo.by_name(connection, name="casino-app")
        assert client is not None
        partner = Access(
            "casino-app",
            "partner",
            "test",
            datetime.now(UTC),
            domain="casino",
            client_id=client.id,
        )
        jobs = [
            run_file_job(
                deployment,
                access=partner,
                stream=io.BytesIO(b"card\n4970101234560001\n"),
                domain="casino",
                columns=["card=card"],
            ).id
            for _ in range(2)
        ]
    finally:
        deployment.close()
    def stored() -> list[str]:
        return sorted({name.split("/")[1] for name in database.stored("jobs/")})

    assert "deleted the files of 0 jobs" in initialised_cli.ok("job", "purge").stdout
    assert "deleted the files of job" in initialised_cli.ok("job", "delete", jobs[0]).stdout
    assert [jobs[1]] == stored()
    assert not (database.home / "jobs" / jobs[0]).exists()
    assert 2 == initialised_cli("job", "purge", "--older-than", "-1").exit_code
    purged = initialised_cli.ok("job", "purge", "--older-than", "0")
    assert "deleted the files of 1 job\n" in purged.stdout
    assert [] == stored()
    assert [] == list((database.home / "jobs").iterdir())
    unknown = initialised_cli("job", "delete", "f" * 32)
    assert 1 == unknown.exit_code
    assert one_error_line(unknown.stderr).endswith("[unknown_job]")


@pytest.mark.master_key_file
def test_master_key_rotate_from_a_fresh_command_line(
    initialised_cli: Cli, database: Database, tmp_path: Path
) -> None:
    """The command's process has unwrapped no key before the rewrap: its own access-log entry
    must be signed under the new master key, not fail and roll the rotation back."""
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", "12345678")
    new_key = tmp_path / "master-2.key"
    new_key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    new_key.chmod(0o600)
    rotated = initialised_cli.ok("master-key", "rotate", "--new-key-file", str(new_key))
    assert "keys re-wrapped" in rotated.stdout
    old = initialised_cli("audit", "verify")
    assert 1 == old.exit_code
    assert one_error_line(old.stderr).endswith("[wrong_master_key]")
    new = {"TIERS_MASTER_KEY_FILE": str(new_key)}
    assert 0 == initialised_cli("audit", "verify", **new).exit_code
    again = initialised_cli(
        "pseudonymise", "--domain", "casino", "--kind", "card", "12345678", **new
    )
    assert (0, 1) == (again.exit_code, len(again.stdout.splitlines()))
    assert "master_key_rotate" in [e.action for e in database.audit_entries()]
