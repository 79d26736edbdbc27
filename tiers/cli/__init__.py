"""The ``tiers`` command line (Typer + Rich). Each command calls one core function."""

from __future__ import annotations

from typing import Annotated

import typer

from tiers import __version__
from tiers.cli.admin import domain_app, init, key_app
from tiers.cli.audit import audit_app
from tiers.cli.clients import client_app
from tiers.cli.data import job_app, pseudonymise, tokenise_file_command
from tiers.cli.exchanges import campaign_app, exchange_app, inbox_app, withdraw
from tiers.cli.links import card_app, customer_app, link_app, policy_app
from tiers.cli.ops import backup, check, master_key_app, restore
from tiers.cli.serve import serve
from tiers.cli.witness import witness_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="tiers",
    help="Trusted-third-party pseudonymisation for loyalty coalitions.",
    no_args_is_help=True,
    # Rich tracebacks with locals would print identifiers and keys held in variables.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"tiers {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="print the version"),
    ] = False,
) -> None:
    """Trusted-third-party pseudonymisation for loyalty coalitions."""


app.command("init")(init)
app.add_typer(domain_app, name="domain")
app.add_typer(key_app, name="key")
app.add_typer(audit_app, name="audit")
app.add_typer(client_app, name="client")
app.add_typer(card_app, name="card")
app.add_typer(customer_app, name="customer")
app.add_typer(link_app, name="link")
app.add_typer(policy_app, name="policy")
app.add_typer(exchange_app, name="exchange")
app.add_typer(inbox_app, name="inbox")
app.add_typer(campaign_app, name="campaign")
app.add_typer(job_app, name="job")
customer_app.command("withdraw")(withdraw)
app.command("backup")(backup)
app.command("restore")(restore)
app.command("check")(check)
app.add_typer(master_key_app, name="master-key")
app.command("pseudonymise")(pseudonymise)
app.command("tokenise-file")(tokenise_file_command)
app.command("serve")(serve)
app.add_typer(witness_app, name="witness")


def main() -> None:
    app()
