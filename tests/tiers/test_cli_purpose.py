"""A purpose on every command that touches data, links, deliveries, outputs or the log's
entries: ``--purpose`` or ``TIERS_PURPOSE``, no default; without one the command is refused
(``purpose_required``) and the refusal is in the log, as denied."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from tests.conftest import Cli, Database
from tiers.cli import app

NO_ID = "0123456789abcdef0123456789abcdef"

# command -> (arguments, the action logged)
REQUIRED: dict[str, tuple[list[str], str]] = {
    "pseudonymise": (["--domain", "casino", "--kind", "card", "12345678"], "pseudonymise"),
    "tokenise-file": (
        ["in.csv", "-o", "out.csv", "--domain", "casino", "--column", "card=card"],
        "tokenise_file",
    ),
    "job delete": ([NO_ID], "job_delete"),
    "job purge": ([], "job_purge"),
    "card enrol": (["12345678", "--domain", "casino"], "card_enrol"),
    "card associate": (
        ["12345678", "87654321", "--domain", "casino", "--other-domain", "sncf"],
        "card_associate",
    ),
    "card dissociate": (["12345678", "--domain", "casino"], "card_dissociate"),
    "card show": (["12345678", "--domain", "casino"], "card_show"),
    "customer transfer": (["12345678", "--domain", "casino"], "customer_transfer"),
    "customer withdraw": (["12345678", "--domain", "casino"], "customer_withdraw"),
    "link show": (["hub.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"], "link_resolve"),
    "exchange send": (["in.csv", "--domain", "casino", "--type", "purchases"], "exchange_send"),
    "inbox list": (["--domain", "casino"], "inbox_read"),
    "inbox get": ([NO_ID, "--domain", "casino"], "inbox_get"),
    "inbox ack": ([NO_ID, "--domain", "casino"], "inbox_ack"),
    "inbox purge": ([], "inbox_purge"),
    "campaign send": (["spring", "--keys", "keys.txt"], "campaign_send"),
    "audit log": ([], "audit_read"),
    "audit alerts": ([], "audit_alerts"),
    "audit proof": (["--seq", "0"], "audit_proof"),
    "audit export": (["-o", "bundle.json"], "audit_export"),
    "audit subject": (["12345678", "--domain", "casino", "--kind", "card"], "audit_subject"),
    "audit report": (
        ["--since", "2026-01-01", "--until", "2027-01-01", "-o", "r.html"],
        "audit_report",
    ),
    "audit purge": ([], "audit_purge"),
}

# Commands that set up, manage or check the service, or prove the log's integrity without
# showing an entry: recorded with the purpose "administration".
ADMINISTRATION = {
    "init",
    "serve",
    "check",
    "backup",
    "restore",
    "master-key rotate",
    "master-key status",
    "domain add",
    "domain list",
    "key rotate",
    "key list",
    "key blind-public",
    "key destroy",
    "key retire",
    "client add",
    "client list",
    "client revoke",
    "client rotate-key",
    "client requests",
    "client approve",
    "policy check",
    "policy diff",
    "policy apply",
    "audit verify",
    "audit verify-export",
    "audit log-key",
    "audit checkpoint",
    "witness init",
    "witness serve",
}


def commands(group: Any, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer keeps a click of its own)
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def test_every_command_is_classified() -> None:
    found = set(commands(typer.main.get_group(app)))
    assert found == set(REQUIRED) | ADMINISTRATION


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_a_data_command_refuses_to_run_without_a_purpose(
    initialised_cli: Cli, database: Database, command: str
) -> None:
    arguments, action = REQUIRED[command]
    before = len(database.audit_entries())
    result = initialised_cli.runner.invoke(
        app,
        [*command.split(), *arguments],
        env={**database.env(), "TIERS_PURPOSE": None},
        catch_exceptions=False,
    )
    assert 0 != result.exit_code
    assert "[purpose_required]" in result.stderr
    assert "12345678" not in result.stderr
    entries = database.audit_entries()
    assert before + 1 == len(entries)
    assert (action, "denied", "purpose_required", "unspecified") == (
        entries[-1].action,
        entries[-1].outcome,
        entries[-1].code,
        entries[-1].purpose,
    )
    assert entries[-1].actor.startswith("operator:")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_purpose_comes_from_the_option_or_the_environment(
    initialised_cli: Cli, database: Database, how: str
) -> None:
    arguments = ["pseudonymise", "--domain", "casino", "--kind", "card", "12345678"]
    if how == "option":
        result = initialised_cli(*arguments, "--purpose", "fraud review", TIERS_PURPOSE="")
    else:
        result = initialised_cli(*arguments, TIERS_PURPOSE="fraud review")
    assert 0 == result.exit_code, result.stderr
    assert "fraud review" == database.audit_entries()[-1].purpose


def test_unspecified_is_not_a_purpose(initialised_cli: Cli, database: Database) -> None:
    result = initialised_cli("audit", "log", TIERS_PURPOSE="unspecified")
    assert "[purpose_required]" in result.stderr
    assert "denied" == database.audit_entries()[-1].outcome


def test_an_administration_command_records_its_purpose(
    initialised_cli: Cli, database: Database
) -> None:
    initialised_cli.ok("domain", "list")
    assert "administration" == database.audit_entries()[-1].purpose
