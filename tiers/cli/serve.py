"""``tiers serve``: the HTTP service under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from tiers.cli._common import (
    handles_errors,
    load_settings,
    operator,
    out_console,
    warn_development_key,
)
from tiers.deployment import Deployment

__all__ = ["serve"]


@handles_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Run the HTTP service (uvicorn)."""
    settings = load_settings()
    # Refuse to start on an uninitialised home or a wrong key.
    Deployment.open_for(settings, operator(), action="serve").close()
    master = settings.load_master_key()
    if master.development:
        warn_development_key(master.source)
    out_console.print(f"tiers listening on http://{host}:{port}", markup=False)
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
