"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tiers import __version__
from tiers.deployment import Deployment
from tiers.errors import TiersError
from tiers.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service, over the deployment that ``settings`` (default: the environment) names."""
    settings = settings or Settings()
    app = FastAPI(title="tiers", version=__version__)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    def readyz() -> JSONResponse:
        """Readiness: the database schema and the keyring can be used."""
        try:
            deployment = Deployment.open(settings)
        except TiersError as error:
            return JSONResponse({"status": "unavailable", "code": error.code}, status_code=503)
        try:
            with deployment.engine.connect() as connection:
                deployment.base_keyring(connection)
        except TiersError as error:
            return JSONResponse({"status": "unavailable", "code": error.code}, status_code=503)
        finally:
            deployment.close()
        return JSONResponse({"status": "ready"})

    return app
