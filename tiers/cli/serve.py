"""``tiers serve``: the HTTP service under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from tiers.cli._common import deployment, handles_errors, out_console, warn_development_key

__all__ = ["serve"]


@handles_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Run the HTTP service (uvicorn)."""
    with deployment() as dep:  # refuse to start on an uninitialised home or a wrong key
        if dep.master.development:
            warn_development_key(dep.master.source)
    out_console.print(f"tiers listening on http://{host}:{port}", markup=False)
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
