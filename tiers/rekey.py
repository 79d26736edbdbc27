"""Re-keying the hub: new hub linking keys derived from stored references (no clear identifier),
a translation file old key -> new key delivered to the hub, and an overlap window during which
the old keys still resolve, until the old version is retired."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection

from keys import DomainKey
from tiers import _hub_keys as hub_keys
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.inbox import staged_delivery
from tiers.pseudonyms import Pseudonym
from tiers.storage import links as links_repo
from tiers.storage.domains import DomainRecord

__all__ = ["OVERLAP", "drop_hub_version", "rekey_hub"]

OVERLAP = timedelta(days=90)


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
    with staged_delivery(
        deployment,
        connection,
        recipient=hub,
        kind="rekey",
        name=f"v{old_version}-to-v{new_key.version}",
        header=["old_linking_key", "new_linking_key"],
        sender="tiers",
        now=access.now,
    ) as delivery:
        for row, new in zip(rows, fresh, strict=True):
            delivery.write(
                [
                    str(Pseudonym(hub.name, old_version, row.value)),
                    str(Pseudonym(hub.name, new_key.version, new)),
                ]
            )
    return len(rows)


def drop_hub_version(connection: Connection, version: int) -> int:
    """The old version's keys stop resolving (on retirement)."""
    return links_repo.delete_hub_version(connection, version=version)
