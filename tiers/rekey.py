"""Re-keying a domain's holders: when a key is rotated, its holder receives a translation file
old pseudonym -> new pseudonym in its inbox, and both versions resolve during an overlap window
(``TIERS_ROTATION_OVERLAP_DAYS``) until the old version is retired.

A partner's file translates the pseudonyms it holds (every subject of its domain's index); the
hub's translates its linking keys, given new values derived from the stored references. Both go
through :func:`translation`. No clear identifier is needed for either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from keys import DomainKey
from tiers import _hub_keys as hub_keys
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.inbox import staged_delivery
from tiers.pseudonyms import Pseudonym
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord

__all__ = ["drop_hub_version", "rekey_hub", "translation"]

Translate = Callable[[list[bytes], list[bytes]], None]


@contextmanager
def translation(
    deployment: Deployment,
    connection: Connection,
    *,
    access: Access,
    holder: DomainRecord,
    old_version: int,
    new_version: int,
    header: list[str],
) -> Iterator[Translate]:
    """A translation delivery to ``holder``, written as batches of old values and their new
    ones (in the same order) are given; it is listed when the rotation commits, not before."""
    with staged_delivery(
        deployment,
        connection,
        recipient=holder,
        kind="rekey",
        name=f"v{old_version}-to-v{new_version}",
        header=header,
        sender="tiers",
        now=access.now,
    ) as delivery:

        def write(old_values: list[bytes], new_values: list[bytes]) -> None:
            for old, new in zip(old_values, new_values, strict=True):
                delivery.write(
                    [
                        str(Pseudonym(holder.name, old_version, old)),
                        str(Pseudonym(holder.name, new_version, new)),
                    ]
                )

        yield write


def rekey_hub(
    deployment: Deployment,
    connection: Connection,
    *,
    access: Access,
    hub: DomainRecord,
    old_version: int,
    new_key: DomainKey,
) -> int:
    """Give every card and customer a key of the new version and deliver the translation."""
    rows = links_repo.hub_keys_of_version(connection, version=old_version)
    fresh = hub_keys.issue(connection, new_key, [(row.ref, row.kind) for row in rows])
    with translation(
        deployment,
        connection,
        access=access,
        holder=hub,
        old_version=old_version,
        new_version=new_key.version,
        header=["old_linking_key", "new_linking_key"],
    ) as translate:
        translate([row.value for row in rows], fresh)
    return len(rows)


def drop_hub_version(connection: Connection, version: int) -> int:
    """The old version's keys stop resolving (on retirement)."""
    return links_repo.delete_hub_version(connection, version=version)
