"""Who each entry was about, when it was about many: the subject index kept with the log.

An entry names one customer at most, in ``subject`` (and an association's other card in
``other_subject``). A batch, a file, an exchange, a campaign or a withdrawal (whose notice
names every card of the customer) is about many: for each identifier such an operation
touches, the customer's audit reference (``HMAC(K_audit, B)``, the value of the entries' own
subject references, as raw bytes) is written with the entry's sequence number into
``audit_subjects``, in bulk, in the operation's transaction (COPY on PostgreSQL). The index is
purged with the entries, and :func:`tiers.audit_ops.lookup_subject` reads it beside the
entries' own columns.

The index is not part of the hash chain: a database writer who deletes rows of it hides
entries from subject look-ups, not from the log, its verification or its export.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from audit import AuditEntry
from tiers.deployment import Deployment
from tiers.pseudonyms import PSEUDONYM_BYTES, pseudonym_value, pseudonym_values
from tiers.storage import audit_log

__all__ = ["REF_BYTES", "index", "index_references", "references"]

REF_BYTES = PSEUDONYM_BYTES


def index(
    deployment: Deployment,
    connection: Connection,
    entry: AuditEntry,
    bases: Iterable[bytes],
    *,
    named_too: bool = False,
) -> None:
    """Index ``entry`` under the customers of ``bases``: unless it names its one customer in
    ``subject``, where ``named_too`` is not set (a withdrawal is about every card of the
    customer, found by any of them once they are unlinked)."""
    if entry.subject is not None and not named_too:
        return
    wanted = list(dict.fromkeys(bases))
    if wanted:
        key = deployment.audit_keyring(connection).active
        audit_log.index_subjects(connection, seq=entry.seq, refs=pseudonym_values(key, wanted))


def index_references(connection: Connection, entry: AuditEntry, refs: bytes | bytearray) -> None:
    """Index ``entry`` under ``refs``, references made already (``REF_BYTES`` each, end to
    end), as a file computes them while it streams."""
    view = memoryview(refs)
    rows = (bytes(view[at : at + REF_BYTES]) for at in range(0, len(view), REF_BYTES))
    audit_log.index_subjects(connection, seq=entry.seq, refs=rows)


def references(
    deployment: Deployment, connection: Connection, bases: Sequence[bytes]
) -> list[bytes]:
    """The index's references of ``bases`` under every live audit key version."""
    ring = deployment.audit_keyring(connection)
    live = [ring.key(v.version) for v in ring if v.state.value != "destroyed"]
    return [pseudonym_value(key, base) for key in live for base in bases]
