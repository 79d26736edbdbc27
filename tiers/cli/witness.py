"""``tiers witness``: run a witness that cosigns another party's tiers access log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from audit.note import VerifierKey
from errors import AuditIntegrityError, InvalidRequest
from tiers.cli._common import handles_errors
from tiers.cli._output import out_console
from tiers.witness import WitnessHome, init_witness

__all__ = ["witness_app"]

witness_app = typer.Typer(
    help="A witness: cosigns a log's checkpoints after checking it only grows (C2SP).",
    no_args_is_help=True,
)

HomeOption = Annotated[Path, typer.Option("--home", help="the witness's own folder")]


@witness_app.command("init")
@handles_errors
def init(
    home: HomeOption,
    name: Annotated[str, typer.Option(help="the witness's name, e.g. cnil.example/witness")],
) -> None:
    """Create the witness's key; prints its verifier key for the log's TIERS_WITNESSES."""
    key = init_witness(home, name)
    out_console.print(key.encode(), markup=False)


@witness_app.command("serve")
@handles_errors
def serve(
    home: HomeOption,
    log_key: Annotated[
        list[str], typer.Option("--log-key", help="a log's verifier key (`tiers audit log-key`)")
    ],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8100,
) -> None:
    """Serve ``POST /add-checkpoint`` for the logs whose keys are given."""
    try:
        keys = [VerifierKey.parse(text) for text in log_key]
    except AuditIntegrityError:
        raise InvalidRequest("--log-key takes a log's verifier key", code="bad_key") from None
    witness = WitnessHome(home, keys)
    from api.witness_app import create_witness_app  # noqa: PLC0415 - the HTTP layer, on demand

    out_console.print(f"witness {witness.name} listening on http://{host}:{port}", markup=False)
    uvicorn.run(create_witness_app(witness), host=host, port=port, log_level="warning")
