"""Operator commands for the lifecycle of a deployment: ``backup``, ``restore``, ``check``,
``master-key rotate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audit import Action
from keys import MasterKey
from tiers import backup as backups
from tiers import checks
from tiers.cli._common import (
    EXIT_ERROR,
    counted,
    deployment,
    handles_errors,
    load_settings,
    operator,
)
from tiers.cli._output import err_console, out_console

__all__ = ["backup", "check", "master_key_app", "restore"]

master_key_app = typer.Typer(help="The master key (key-encryption key).", no_args_is_help=True)


@handles_errors
def backup(
    output: Annotated[Path, typer.Option("-o", "--output", help="the archive to write")],
) -> None:
    """A consistent snapshot of the database (wrapped keys included, never the master key) and
    of the inbox files."""
    access = operator()
    with deployment(access, Action.BACKUP) as dep:
        rows = backups.backup(dep, access=access, output=output)
    out_console.print(
        f"backup written to {output}: {counted(rows, 'row')}; keep the master key apart",
        markup=False,
    )


@handles_errors
def restore(
    archive: Annotated[Path, typer.Argument(help="a backup archive")],
    unsealed: Annotated[
        bool,
        typer.Option(help="accept a backup made before backups were sealed (logged)"),
    ] = False,
) -> None:
    """Restore a backup into a new home (or an empty database) under the same master key. A
    backup whose seal fails, or one behind the checkpoint store, is refused."""
    report = backups.restore(
        load_settings(), access=operator(), archive_path=archive, accept_unsealed=unsealed
    )
    out_console.print(
        f"restored {counted(report.rows, 'row')} and {counted(report.files, 'inbox file')} "
        f"(schema {report.revision})",
        markup=False,
    )


@handles_errors
def check() -> None:
    """List every row of power (client, keyring) changed outside the service or contradicting
    the access log, and every integrity fault of the index and cards. Exits 1 when there is
    any."""
    access = operator("integrity check")
    with deployment(access, Action.CHECK) as dep:
        found = checks.check_deployment(dep, access=access)
    for finding in found:
        err_console.print(finding.line(), markup=False)
    if found:
        raise typer.Exit(EXIT_ERROR)
    out_console.print(
        "no finding: every client and keyring holds its seal and agrees with the log; the "
        "index and the cards are whole",
        markup=False,
    )


@master_key_app.command("rotate")
@handles_errors
def master_key_rotate(
    new_key_file: Annotated[Path, typer.Option(help="the new master key (base64, mode 0600)")],
) -> None:
    """Re-wrap every key under a new master key, atomically; then point TIERS_MASTER_KEY_FILE
    at the new file."""
    new_master = MasterKey.from_file(new_key_file)
    access = operator()
    with deployment(access, Action.MASTER_KEY_ROTATE) as dep:
        moved = backups.rotate_master_key(dep, access=access, new_master=new_master)
    out_console.print(
        f"{counted(moved, 'key')} re-wrapped; now set TIERS_MASTER_KEY_FILE={new_key_file}",
        markup=False,
    )
