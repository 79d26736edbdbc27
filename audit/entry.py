"""Access-log entries and their canonical serialisation.

The serialisation is pinned (a test holds its exact bytes): JSON with sorted keys, no spaces,
ASCII only (every other character, control characters included, is ``\\u``-escaped, which also
neutralises log injection), times in UTC with microseconds and a ``Z``. Changing it would make
every stored log unverifiable, so it carries a version ``v`` instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from errors import AuditIntegrityError

__all__ = ["GENESIS", "AuditEntry", "Counts", "parse_entry"]

GENESIS = "0" * 64
OUTCOMES = ("ok", "denied", "error")
Outcome = Literal["ok", "denied", "error"]
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Counts:
    """Record counts of an operation: what came in, what went out, what was rejected."""

    records_in: int = 0
    records_out: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"in": self.records_in, "out": self.records_out, "rejected": self.rejected}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One access. Holds no clear identifier, no foreign pseudonym and no key material."""

    seq: int
    time: datetime
    actor: str
    role: str
    action: str
    purpose: str
    outcome: Outcome
    request_id: str
    prev: str
    domains: tuple[str, ...] = ()
    counts: Counts = field(default_factory=Counts)
    code: str | None = None
    subject: str | None = None
    detail: Mapping[str, str | int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "seq": self.seq,
            "time": self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "purpose": self.purpose,
            "domains": list(self.domains),
            "counts": self.counts.as_dict(),
            "outcome": self.outcome,
            "code": self.code,
            "request_id": self.request_id,
            "subject": self.subject,
            "detail": dict(self.detail),
            "prev": self.prev,
        }

    def canonical(self) -> bytes:
        """The exact bytes that are hashed, chained and signed."""
        return json.dumps(
            self.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode("ascii")


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise AuditIntegrityError(f"malformed entry: {what}", code="malformed_entry")


def entry_link(data: bytes) -> tuple[int, str]:
    """An entry's sequence number and the hash it links to, without the rest of its checks
    (:func:`parse_entry` makes them all): for the signer, which proves the chain and the tree
    and leaves the entries' canonical form to verification."""
    try:
        raw = json.loads(data)
        seq, prev = raw["seq"], raw["prev"]
    except (ValueError, TypeError, KeyError):
        raise AuditIntegrityError("malformed entry: not JSON", code="malformed_entry") from None
    _require(isinstance(seq, int) and isinstance(prev, str), "seq or prev")
    return seq, prev


def parse_entry(data: bytes) -> AuditEntry:
    """Parse canonical bytes back; raises :class:`AuditIntegrityError` unless they are canonical."""
    try:
        raw = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuditIntegrityError(
            "malformed entry: not canonical JSON", code="malformed_entry"
        ) from None
    _require(isinstance(raw, dict) and raw.get("v") == 1, "unknown version")
    try:
        counts = raw["counts"]
        _require(isinstance(raw["time"], str) and bool(_TIME.fullmatch(raw["time"])), "time")
        _require(raw["outcome"] in OUTCOMES, "outcome")
        _require(isinstance(raw["prev"], str) and bool(_HEX64.fullmatch(raw["prev"])), "prev")
        _require(isinstance(raw["seq"], int) and raw["seq"] >= 0, "seq")
        entry = AuditEntry(
            seq=raw["seq"],
            time=datetime.strptime(raw["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
            actor=str(raw["actor"]),
            role=str(raw["role"]),
            action=str(raw["action"]),
            purpose=str(raw["purpose"]),
            outcome=raw["outcome"],
            request_id=str(raw["request_id"]),
            prev=raw["prev"],
            domains=tuple(str(d) for d in raw["domains"]),
            counts=Counts(int(counts["in"]), int(counts["out"]), int(counts["rejected"])),
            code=None if raw["code"] is None else str(raw["code"]),
            subject=None if raw["subject"] is None else str(raw["subject"]),
            detail=dict(raw["detail"]),
        )
    except (KeyError, TypeError, ValueError):
        raise AuditIntegrityError("malformed entry: fields", code="malformed_entry") from None
    _require(entry.canonical() == data, "not in canonical form")
    return entry
