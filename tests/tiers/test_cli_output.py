"""A command line that fits in pipes: every listing command prints JSON on request, whole
tab-separated lines when its output is not a terminal, and no Python repr; the version, the
port, the home and a missing output folder get clear answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer

from tests.conftest import Cli, Database
from tiers import __version__
from tiers.cli import app

# Every command that takes --json (and --format table|tsv|json), with the arguments that make it
# list something; a command given the option without a line here fails
# test_every_listing_command_is_covered.
LISTINGS: dict[str, list[str]] = {
    "audit alerts": [],
    "audit log": [],
    "audit subject": ["10000001", "--domain", "casino", "--kind", "card"],
    "campaign send": ["xmas", "--keys", "{keys}"],
    "card show": ["10000001", "--domain", "casino"],
    "client list": [],
    "client requests": [],
    "domain list": [],
    "inbox list": ["--domain", "hub", "--all"],
    "key list": ["casino"],
    "key blind-public": ["casino"],
    "link show": ["{key}"],
}

# The access log's entries are printed one JSON object per line, as they are exported.
JSON_LINES = {"audit log", "audit subject"}


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):  # a group (Typer keeps a click of its own)
            found.update(_commands(command, path + " "))
        else:
            found[path] = command
    return found


def _with_format() -> set[str]:
    commands = _commands(typer.main.get_group(app))
    return {
        path
        for path, command in commands.items()
        if any("--json" in parameter.opts for parameter in command.params)
    }


def test_every_listing_command_is_covered() -> None:
    assert _with_format() == set(LISTINGS)
    listing_names = {path for path in _commands(typer.main.get_group(app)) if "list" in path}
    assert listing_names <= set(LISTINGS)


@pytest.fixture
def busy(cli: Cli, tmp_path: Path) -> tuple[Cli, dict[str, str]]:
    """A deployment with something in each listing: a linked customer, an exchange in the
    hub's inbox, a rotated key, a client."""
    cli.ok("init")
    for name in ("casino", "sncf"):
        cli.ok("domain", "add", name, "--role", "partner")
    cli.ok("domain", "add", "hub", "--role", "hub")
    cli.ok("client", "add", "casino-app", "--role", "partner", "--domain", "casino")
    cli.ok("card", "enrol", "--domain", "casino", "10000001")
    cli.ok("card", "enrol", "--domain", "sncf", "70000001")
    cli.ok(
        "card", "associate", "10000001", "70000001", "--domain", "casino", "--other-domain", "sncf"
    )
    month = tmp_path / "month.csv"
    month.write_text("card,date,amount,store\n10000001,2026-11-02,12.50,C-042\n")
    cli.ok("exchange", "send", str(month), "--domain", "casino", "--type", "purchases")
    cli.ok("key", "rotate", "casino")
    [delivery] = json.loads(cli.ok("inbox", "list", "--domain", "hub", "--json").stdout)
    hub_csv = cli.ok("inbox", "get", delivery["id"], "--domain", "hub").stdout
    key = hub_csv.splitlines()[1].split(",")[0]
    keys = tmp_path / "keys.txt"
    keys.write_text(key + "\n")
    return cli, {"key": key, "keys": str(keys)}


def _args(command: str, values: dict[str, str]) -> list[str]:
    return [*command.split(), *(arg.format(**values) for arg in LISTINGS[command])]


def _lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_each_listing_prints_json_that_parses(busy: tuple[Cli, dict[str, str]]) -> None:
    cli, values = busy
    for command in sorted(LISTINGS):
        result = cli(*_args(command, values), "--json")
        assert result.exit_code in {0, 3}, (command, result.stderr)  # 3: alerts found
        assert "{'" not in result.stdout and "datetime." not in result.stdout, command
        lines = command in JSON_LINES
        parsed = _lines(result.stdout) if lines else json.loads(result.stdout)
        assert parsed is not None, command
        by_format = cli(*_args(command, values), "--format", "json")
        if lines:  # each read of the log is logged: there may be one more entry
            assert _lines(by_format.stdout)[: len(parsed)] == parsed, command
        elif command != "campaign send":  # a second campaign has other deliveries
            assert json.loads(by_format.stdout) == parsed, command


def test_listings_hold_their_content_in_json(busy: tuple[Cli, dict[str, str]]) -> None:
    cli, values = busy
    domains = json.loads(cli.ok("domain", "list", "--json").stdout)
    assert {"casino", "sncf", "hub"} <= {d["name"] for d in domains}
    versions = json.loads(cli.ok("key", "list", "casino", "--json").stdout)
    assert [(v["version"], v["state"]) for v in versions] == [("1", "verify-only"), ("2", "active")]
    shown = json.loads(cli.ok("link", "show", values["key"], "--json").stdout)
    assert shown["attached to"] == "casino"
    assert sorted(card["partner"] for card in shown["cards"]) == ["casino", "sncf"]
    assert all(card["linking key"].startswith("hub.v1.") for card in shown["cards"])
    log = _lines(cli.ok("audit", "log", "--format", "json").stdout)
    assert {"init", "exchange_send", "key_rotate"} <= {entry["action"] for entry in log}


def test_a_pipe_gets_whole_values_in_tab_separated_lines(
    busy: tuple[Cli, dict[str, str]],
) -> None:
    """The test runner is not a terminal: the default is tsv, keys are printed whole."""
    cli, values = busy
    shown = cli.ok("link", "show", values["key"]).stdout
    rows = [line.split("\t") for line in shown.splitlines() if "\t" in line]
    assert rows[0] == ["partner", "linking key", "since"]
    assert all(len(row[1]) == len(values["key"]) for row in rows[1:])
    listing = cli.ok("domain", "list").stdout.splitlines()
    assert listing[0].split("\t") == ["name", "role", "luhn", "blind only", "created"]
    assert cli.ok("domain", "list", "--format", "tsv").stdout.splitlines() == listing
    table = cli.ok("domain", "list", "--format", "table").stdout
    assert "casino" in table and "\t" not in table


def test_version(cli: Cli) -> None:
    assert cli.ok("--version").stdout.strip() == f"tiers {__version__}"


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_serve_refuses_a_port_out_of_range(cli: Cli, port: str) -> None:
    result = cli("serve", "--port", port)
    assert result.exit_code == 2
    assert "listening" not in result.stdout


@pytest.mark.master_key_file
def test_no_master_key_names_the_home_as_an_absolute_path(
    cli: Cli, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another folder with a relative home: the error names the folder it looked in,
    so that the operator does not run `tiers init` and make a second deployment."""
    monkeypatch.chdir(tmp_path)
    result = cli("domain", "list", TIERS_HOME="elsewhere")
    assert result.exit_code == 1
    assert "[no_master_key]" in result.stderr
    assert str(tmp_path / "elsewhere") in result.stderr.replace("\n", "")


def test_a_missing_output_folder_is_a_clear_error(
    busy: tuple[Cli, dict[str, str]], tmp_path: Path
) -> None:
    cli, _ = busy
    source = tmp_path / "in.csv"
    source.write_text("card\n10000001\n")
    missing = tmp_path / "no-such-folder" / "out.csv"
    result = cli(
        "tokenise-file", str(source), "--domain", "casino", "--column", "card=card",
        "--output", str(missing),
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "[no_such_folder]" in result.stderr
    assert not missing.parent.exists()


def test_json_output_is_ascii_so_that_no_control_reaches_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A C1 control (CSI) and a bidirectional override in logged text are escaped in JSON, as
    tables and tab-separated lines escape them."""
    from tiers.cli._output import OutputFormat, print_record, print_rows  # noqa: PLC0415

    hostile = "a\u009b2Jb\u202ec"
    print_rows(["purpose"], [[hostile]], OutputFormat.JSON)
    print_record({"purpose": hostile}, as_json=True)
    print_rows(["purpose"], [[hostile]], OutputFormat.TSV)
    out = capsys.readouterr().out
    assert "\u009b" not in out and "\u202e" not in out
    assert json.loads(out.split("\n]\n")[0] + "\n]")[0]["purpose"] == hostile
