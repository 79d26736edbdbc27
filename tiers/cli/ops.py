"""Operator commands for the lifecycle of a deployment: ``backup``, ``restore``, ``check``,
``master-key rotate`` and ``master-key status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audit import Action
from errors import ConfigurationError
from keys import KeyEncryptionKey, MasterKey
from keys.hsm import Pkcs11MasterKey
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
    """List every row of power (client, keyring, domain) changed outside the service or
    contradicting the access log, and every integrity fault of the index and cards. Exits 1
    when there is any."""
    access = operator("integrity check")
    with deployment(access, Action.CHECK) as dep:
        found = checks.check_deployment(dep, access=access)
    for finding in found:
        err_console.print(finding.line(), markup=False)
    if found:
        raise typer.Exit(EXIT_ERROR)
    out_console.print(
        "no finding: every client, keyring and domain holds its seal and agrees with the log; "
        "the index and the cards are whole",
        markup=False,
    )


@master_key_app.command("rotate")
@handles_errors
def master_key_rotate(
    new_key_file: Annotated[
        Path | None, typer.Option(help="the new master key: a file (base64, mode 0600)")
    ] = None,
    to_pkcs11: Annotated[
        str | None,
        typer.Option(
            "--to-pkcs11",
            metavar="KEY_LABEL",
            help="the new master key: this key pair in the PKCS#11 token of TIERS_PKCS11_* "
            "(generated there if absent)",
        ),
    ] = None,
) -> None:
    """Re-wrap every key under a new master key, atomically: from a file or a token, to a file
    or a token. Then point the settings at the new key, as the command says."""
    if (new_key_file is None) == (to_pkcs11 is None):
        raise ConfigurationError(
            "give one new master key: --new-key-file PATH or --to-pkcs11 KEY_LABEL",
            code="bad_option",
        )
    settings = load_settings()
    new_master: KeyEncryptionKey
    if to_pkcs11 is not None:
        new_master = Pkcs11MasterKey.open(settings.pkcs11_config(to_pkcs11), create=True)
        then = f"TIERS_MASTER_KEY_BACKEND=pkcs11 and TIERS_PKCS11_KEY_LABEL={to_pkcs11}"
    else:
        assert new_key_file is not None
        new_master = MasterKey.from_file(new_key_file)
        then = f"TIERS_MASTER_KEY_BACKEND=file and TIERS_MASTER_KEY_FILE={new_key_file}"
    access = operator()
    with deployment(access, Action.MASTER_KEY_ROTATE) as dep:
        moved = backups.rotate_master_key(dep, access=access, new_master=new_master)
    out_console.print(f"{counted(moved, 'key')} re-wrapped; now set {then}", markup=False)


@master_key_app.command("status")
@handles_errors
def master_key_status() -> None:
    """Where the master key is: its backend and, for a key in a PKCS#11 token, the token and
    the key pair's attributes (never the key itself); with the database's check value."""
    access = operator()
    with deployment(access, Action.MASTER_KEY_STATUS) as dep:
        described = backups.master_key_status(dep, access=access)
    for name, value in described.items():
        shown = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        out_console.print(f"{name}: {shown}", markup=False)
