"""``tiers serve``: the HTTP service under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from api.logs import logging_config
from audit import Action
from tiers.cli._common import handles_errors, load_settings, operator, warn_development_key
from tiers.cli._output import err_console, out_console
from tiers.deployment import Deployment

__all__ = ["serve"]


@handles_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes (PostgreSQL: several)")] = 1,
    access_log: Annotated[
        bool, typer.Option(help="uvicorn's line per request (off: the access log has it)")
    ] = False,
) -> None:
    """Run the HTTP service (uvicorn).

    uvicorn's access log is off unless asked for: every call is already in the tamper-evident
    access log, and a plain line per request would write pseudonyms found in URLs (hub linking
    keys) to the console, unprotected, and cost a twentieth of a request's time.
    """
    settings = load_settings()
    # Refuse to start on an uninitialised home or a wrong key.
    Deployment.open_for(settings, operator(), action=Action.SERVE).close()
    master = settings.load_master_key()
    if master.development:
        warn_development_key(master.source)
    if not settings.witnesses.strip():
        err_console.print(
            "note: no witness configured (TIERS_WITNESSES): the access log's checkpoints are "
            "kept on this host only, and its operator could replace them unseen",
            markup=False,
        )
    out_console.print(f"tiers listening on http://{host}:{port}", markup=False)
    if workers > 1 and not settings.database_url:
        err_console.print(
            "note: several workers over the embedded SQLite database write one at a time; "
            "use PostgreSQL (TIERS_DATABASE_URL) to scale out",
            markup=False,
        )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
        log_config=logging_config(settings.log_format),
    )
