"""What every CLI command shares: settings, the deployment, the clock, error reporting."""

from __future__ import annotations

import functools
import getpass
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from audit import Action
from errors import TiersError
from tiers.auditing import (
    Access,
    is_recorded,
    purpose_or_unspecified,
    record_failure,
    stated_purpose,
)
from tiers.cli._output import err_console
from tiers.deployment import Deployment
from tiers.settings import Settings

__all__ = [
    "EXIT_ERROR",
    "EXIT_REJECTS",
    "Delimiter",
    "Encoding",
    "FileFormat",
    "Purpose",
    "counted",
    "deployment",
    "handles_errors",
    "load_settings",
    "operator",
    "warn_development_key",
]


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 row``, ``2 rows``; ``plural`` where adding an s is wrong (``entry``, ``entries``)."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


EXIT_ERROR = 1
EXIT_REJECTS = 2
EXIT_INTERNAL = 70


P = ParamSpec("P")
R = TypeVar("R")


def now() -> datetime:
    return datetime.now(UTC)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # Name the settings that are wrong, never their values.
        names = ", ".join(
            "TIERS_" + str(error["loc"][0]).upper() for error in exc.errors() if error["loc"]
        )
        raise typer.Exit(
            _fail(f"invalid settings: {names or 'unknown'}", "configuration")
        ) from None


def _fail(message: str, code: str) -> int:
    err_console.print(f"error: {message} [{code}]", markup=False)
    return EXIT_ERROR


def handles_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn core errors into one ``error: … [code]`` line on stderr and exit status 1.

    Anything unexpected is reported by its type only (its message could quote data); set
    ``TIERS_DEBUG=1`` to see the traceback.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except TiersError as error:
            raise typer.Exit(_fail(error.message, error.code)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - the last line of defence of the CLI
            if os.environ.get("TIERS_DEBUG") == "1":
                traceback.print_exc(file=sys.stderr)
            err_console.print(
                f"error: internal error ({type(error).__name__}); nothing was completed. "
                "Set TIERS_DEBUG=1 for the traceback [internal]",
                markup=False,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


ADMINISTRATION = "administration"

# A command that reads or writes data, links, deliveries, outputs or the log's entries states
# why, on its command line or in the environment; there is no default.
Purpose = Annotated[
    str | None,
    typer.Option(
        "--purpose",
        envvar="TIERS_PURPOSE",
        show_default=False,
        help="why: recorded in the access log; required [env: TIERS_PURPOSE]",
    ),
]


# How a partner's file is read: found from the header unless named, and UTF-8 unless named.
Delimiter = Annotated[
    str | None,
    typer.Option(
        show_default=False,
        help="field delimiter (tab: 'tab') [default: found from the header among , ; tab |]",
    ),
]
FileFormat = Annotated[
    str | None,
    typer.Option(
        "--format", show_default=False, help="csv or parquet [default: by the file's extension]"
    ),
]
Encoding = Annotated[
    str, typer.Option(help="utf-8 (with or without a byte-order mark), cp1252 or latin-1")
]


def operator(purpose: str | None = ADMINISTRATION) -> Access:
    """The access of whoever runs the command line: the operating-system user, as operator.
    A purpose that is missing or invalid is recorded as ``unspecified``; :func:`deployment`
    refuses it where one is required."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = "unknown"
    return Access(
        actor=f"operator:{user}",
        role="operator",
        purpose=purpose_or_unspecified(purpose),
        now=now(),
    )


@contextmanager
def deployment(
    access: Access, action: Action, *, purpose: str | None = ADMINISTRATION
) -> Iterator[Deployment]:
    """The deployment, opened for ``action``; a refusal to open is recorded when possible.
    ``purpose`` is the one the command line stated: missing or invalid, the command is
    refused (``purpose_required``, ``bad_purpose``) and the refusal recorded."""
    opened = Deployment.open_for(load_settings(), access, action=action)
    try:
        stated_purpose(purpose, required=True, how="--purpose or TIERS_PURPOSE")
        yield opened
    except BaseException as error:
        # Refusals raised by the command itself (bad arguments) are logged here; those of the
        # core operation were logged by it.
        if not is_recorded(error):
            failure = (
                error
                if isinstance(error, TiersError)
                else TiersError("interrupted", code="interrupted")
                if isinstance(error, KeyboardInterrupt)
                else error
            )
            if not isinstance(error, typer.Exit):
                record_failure(opened.engine, access, action=action, error=failure)
        raise
    finally:
        # A command leaves no entry of its own unsigned: the checkpoint store covers it, and
        # the witnesses are sent it. A failure here never hides the command's own outcome.
        try:
            opened.sign_pending()
            opened.witness_newest()
        except Exception as exc:  # noqa: BLE001 - reported; the command's result stands
            err_console.print(
                f"warning: no checkpoint was signed or witnessed ({type(exc).__name__})",
                markup=False,
            )
        if opened.log_fault is not None:
            err_console.print(
                f"error: {opened.log_fault.message} [{opened.log_fault.code}]", markup=False
            )
        opened.close()


def warn_development_key(source: str) -> None:
    err_console.print(
        "[bold red]WARNING: using a DEVELOPMENT master key[/] "
        f"({source}).\nIt is stored in clear next to the data it protects. Never use it for real "
        "customer data: set TIERS_MASTER_KEY_FILE to a key kept apart (see docs/operator.md).",
    )
