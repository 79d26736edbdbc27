"""A client of a `tiers` pseudonymisation service, for partners, the hub and auditors.

::

    from tiers_client import Client

    with Client("https://tiers.example", api_key, purpose="monthly exchange") as tiers:
        tiers.pseudonymise("card", ["4970 1012 3456"])
        tiers.tokenise_file("customers.csv", "customers.tokens.csv", columns=["card=card"])

Errors are exceptions of :mod:`tiers_client.errors`, one per error code of the service.
"""

from __future__ import annotations

from tiers_client import errors, models
from tiers_client._client import AsyncClient, Client
from tiers_client.errors import TiersError

__all__ = ["AsyncClient", "Client", "TiersError", "errors", "models"]
__version__ = "0.1.0"
