"""The HTTP API (FastAPI): routes, authentication and schemas over the `tiers` core. Thin."""

from __future__ import annotations

from api.app import create_app

__all__ = ["create_app"]
