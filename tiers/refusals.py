"""Refusals made at the door, traced without letting a flood flood the log.

A request refused before any operation runs (no key or an unknown one, a revoked key, too many
key verifications from one address, a client over its request rate, a body too large) leaves
an access-log entry like any other. A flood of them must not turn into a flood of writes,
though, so they are counted per **caller, address, code and minute**:

- the first of each minute is written at once, as its own entry, so that a refusal is in the
  log as soon as it is answered;
- the others of that minute are written as one entry when the minute is over, with their
  number in ``detail["count"]`` (and at the latest when the service stops).

The caller is the client when it is known: a revoked key that verifies is named as its client,
with the code ``revoked_key``. Otherwise it is ``anonymous``, and the entry carries the public
prefix of the key presented, if it had the form of one, and the caller's address.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from audit import Action
from tiers.auditing import Access, Pending, record_many
from tiers.deployment import Deployment

__all__ = ["Refusal", "RefusalTally"]

_log = logging.getLogger("tiers.audit")


@dataclass(frozen=True, slots=True)
class Refusal:
    """One request refused at the door."""

    access: Access  # the client's, when it is known; else the anonymous caller's
    action: Action
    code: str
    address: str
    key_prefix: str | None = None
    outcome: str = "denied"
    # Set on the entry that counts the later refusals of a minute: the minute they fell in.
    minute: datetime | None = None

    def key(self) -> tuple[str, str, str, str, datetime]:
        """What refusals are counted by: the prefixes a flood presents are not (they are the
        caller's to choose), and the entry names the first of the minute's."""
        minute = self.minute or _minute(self.access.now)
        return (self.access.actor, self.address, self.code, self.action, minute)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _summary(first: Refusal, moment: datetime) -> Refusal:
    """The entry that counts the refusals that came after ``first`` in its minute: an entry of
    when it is written (``moment``), naming the minute it counts."""
    access = replace(first.access, now=max(first.access.now, moment), request_id=uuid.uuid4().hex)
    return replace(first, access=access, minute=first.key()[-1])


class RefusalTally:
    """Refusals of one process, written as the module says."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (the first refusal, how many came after it in the minute)
        self._held: dict[tuple[str, str, str, str, datetime], tuple[Refusal, int]] = {}

    def count(self, refusal: Refusal) -> bool:
        """Count ``refusal``; True when it is the first of its minute, which the caller then
        writes at once (:meth:`write`)."""
        key = refusal.key()
        with self._lock:
            first, later = self._held.get(key, (refusal, -1))
            self._held[key] = (first, later + 1)
        return later == -1

    def write(self, deployment: Deployment, refusal: Refusal) -> None:
        """The entry of a minute's first refusal."""
        self._write(deployment, [(refusal, 1)])

    def flush(self, deployment: Deployment, now: datetime | None = None) -> None:
        """Write the counts of the minutes that are over before ``now`` (all when None)."""
        with self._lock:
            done = [key for key in self._held if now is None or key[-1] < _minute(now)]
            held = [self._held.pop(key) for key in done]
        moment = now or datetime.now(UTC)
        self._write(deployment, [(_summary(first, moment), n) for first, n in held if n > 0])

    def _write(self, deployment: Deployment, counted: list[tuple[Refusal, int]]) -> None:
        if not counted:
            return
        pending = [
            Pending(
                replace(refusal.access, purpose="unspecified"),
                refusal.action,
                outcome=refusal.outcome,
                code=refusal.code,
                detail={
                    "address": refusal.address,
                    "count": count,
                    **({"minute": refusal.minute.isoformat()} if refusal.minute else {}),
                    **({"key_prefix": refusal.key_prefix} if refusal.key_prefix else {}),
                },
            )
            for refusal, count in counted
        ]
        try:
            with deployment.transaction() as connection:
                record_many(connection, pending)
        except Exception as error:  # noqa: BLE001 - the refusal is answered all the same
            _log.error("could not record %d refusals: %s", len(pending), type(error).__name__)
