"""Issuing the hub's linking keys: one per enrolled card and one per alliance customer, each the
hub domain's pseudonym of the card's or customer's stored reference (never of a clear
identifier). Enrolment, a new customer, a new hub domain and the hub's re-keying all issue
them here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from keys import DomainKey
from tiers.pseudonyms import pseudonym_values
from tiers.storage import links as links_repo

__all__ = ["issue"]


def issue(connection: Connection, key: DomainKey, refs: Sequence[tuple[bytes, str]]) -> list[bytes]:
    """Give each ``(reference, kind)`` (``kind`` is ``card`` or ``customer``) a linking key of
    ``key``'s version, keeping those it already has; returns the keys' values, in order."""
    values = pseudonym_values(key, [ref for ref, _ in refs])
    links_repo.insert_hub_keys(
        connection,
        [
            {"version": key.version, "kind": kind, "ref": ref, "value": value}
            for (ref, kind), value in zip(refs, values, strict=True)
        ],
    )
    return values
