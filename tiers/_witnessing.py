"""Sending checkpoints to witnesses (C2SP tlog-witness ``add-checkpoint``), keeping their
cosignatures, and saying whether the quorum was reached.

Witnesses are configured with ``TIERS_WITNESSES`` ("URL VKEY" pairs, separated by ``;`` or
newlines; the key in C2SP vkey form with type 0x04) and ``TIERS_WITNESS_QUORUM`` (default: all
of them). A witness checks the log's signature and a consistency proof from the last checkpoint
it cosigned, so a history rewritten in the database is refused by every witness even when the
log's own signing key signed it. Requests are bounded by ``TIERS_WITNESS_TIMEOUT_SECONDS``; a
witness that is down, slow, refuses or answers garbage is reported, and nothing is lost: the
next checkpoint is sent again, from the size the witness says it has.
"""

from __future__ import annotations

import base64
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit import CompactRange, consistency_proof
from audit.note import COSIGNATURE, Note, NoteSignature, VerifierKey, verify_cosignature
from errors import AuditIntegrityError, ConfigurationError
from tiers.storage import audit_log
from tiers.storage.checkpoint_store import StoredCheckpoint

if TYPE_CHECKING:
    from tiers.deployment import Deployment
    from tiers.settings import Settings

__all__ = [
    "Submission",
    "Witness",
    "WitnessStatus",
    "configured",
    "request_for",
    "status",
    "submit",
]

_log = logging.getLogger("tiers.audit")
_SIZE = re.compile(rb"(0|[1-9][0-9]{0,18})\n")
MAX_RESPONSE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Witness:
    url: str
    key: VerifierKey


def configured(settings: Settings) -> tuple[list[Witness], int]:
    """The witnesses and the quorum the settings name; raises :class:`ConfigurationError`."""
    witnesses = []
    for item in re.split(r"[;\n]", settings.witnesses):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            raise ConfigurationError(
                "TIERS_WITNESSES holds 'URL VKEY' pairs separated by ';'", code="bad_witnesses"
            )
        try:
            key = VerifierKey.parse(parts[1])
        except AuditIntegrityError:
            raise ConfigurationError(
                "a key of TIERS_WITNESSES is not a witness verifier key", code="bad_witnesses"
            ) from None
        if key.kind != COSIGNATURE:
            raise ConfigurationError(
                "a key of TIERS_WITNESSES is not a cosignature (type 0x04) key",
                code="bad_witnesses",
            )
        witnesses.append(Witness(parts[0].rstrip("/"), key))
    quorum = settings.witness_quorum or len(witnesses)
    if quorum > len(witnesses):
        raise ConfigurationError(
            "TIERS_WITNESS_QUORUM is larger than the number of witnesses", code="bad_witnesses"
        )
    return witnesses, quorum


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """Which witnesses cosigned the newest checkpoint, against the quorum."""

    witnesses: int
    quorum: int
    cosigned_by: tuple[str, ...]
    size: int | None

    @property
    def reached(self) -> bool:
        return len(self.cosigned_by) >= self.quorum

    def notes(self) -> tuple[str, ...]:
        if not self.witnesses:
            return ("no witness configured: the checkpoints are only as safe as this host",)
        state = "reached" if self.reached else "NOT reached"
        return (
            f"witness quorum {state} at size {self.size}: "
            f"{len(self.cosigned_by)} of {self.witnesses} cosigned (quorum {self.quorum})",
        )

    def as_dict(self) -> dict[str, object]:
        if not self.witnesses:
            return {"configured": 0}
        return {
            "configured": self.witnesses,
            "quorum": self.quorum,
            "cosigned": len(self.cosigned_by),
            "size": self.size,
            "reached": self.reached,
        }


def _cosigners(stored: StoredCheckpoint, witnesses: Sequence[Witness]) -> tuple[str, ...]:
    text = stored.checkpoint.body().decode("utf-8")
    names = []
    for witness in witnesses:
        for line in stored.cosignatures:
            try:
                verify_cosignature(text, line, witness.key)
            except AuditIntegrityError:
                continue
            names.append(witness.key.name)
            break
    return tuple(names)


def status(deployment: Deployment, latest: StoredCheckpoint | None) -> WitnessStatus:
    witnesses, quorum = configured(deployment.settings)
    cosigned = _cosigners(latest, witnesses) if latest and witnesses else ()
    return WitnessStatus(len(witnesses), quorum, cosigned, latest.size if latest else None)


@dataclass(frozen=True, slots=True)
class Submission:
    """What one witness said of one checkpoint."""

    witness: str
    cosigned: bool
    code: str


class _Refused(Exception):
    def __init__(self, code: str, size: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.size = size


def _request_body(old: int, proof: Sequence[bytes], note: Note) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + note.encode()).encode("utf-8")


def _post(url: str, body: bytes, timeout: float) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - the operator configures http(s) URLs only
        url + "/add-checkpoint",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        # Bandit B310 waived below: configured() admits http and https URLs only
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310
            return bytes(response.read(MAX_RESPONSE))
    except urllib.error.HTTPError as error:
        data = error.read(64)
        size = None
        if error.code == 409 and _SIZE.fullmatch(data):
            size = int(data)
        raise _Refused(f"http_{error.code}", size) from None
    except (urllib.error.URLError, TimeoutError, OSError):
        raise _Refused("unreachable") from None


def _proof(deployment: Deployment, old: int, stored: StoredCheckpoint) -> list[bytes]:
    """A consistency proof from size ``old`` to ``stored``: from the store's checkpoint there,
    or, for a size the store does not hold, from the database's leaves (the witness judges)."""
    if old == 0:
        return []
    with deployment.reading() as connection:
        start = deployment.checkpoint_store(connection).at(old)
        prefix: CompactRange | None
        if start is not None:
            entries = audit_log.leaves_between(connection, start=old, end=stored.size)
            leaves, prefix = [entry.hash for entry in entries], start.compact_range()
        else:
            leaves, prefix = audit_log.tree_leaves(connection)
    try:
        return consistency_proof(old, stored.size, leaves, prefix)
    except AuditIntegrityError:
        raise _Refused("unknown_size") from None


def request_for(deployment: Deployment, stored: StoredCheckpoint, old: int) -> bytes:
    """The ``add-checkpoint`` request body for ``stored``, proved from size ``old``."""
    with deployment.reading() as connection:
        public_key = deployment.signer(connection).public_key
    note = stored.checkpoint.note(public_key)
    return _request_body(old, _proof(deployment, old, stored), note)


def _submit_one(
    deployment: Deployment, witness: Witness, stored: StoredCheckpoint, old: int
) -> NoteSignature:
    timeout = deployment.settings.witness_timeout_seconds
    for _ in range(2):  # a 409 tells the size the witness has: one more try from there
        try:
            answer = _post(witness.url, request_for(deployment, stored, old), timeout)
        except _Refused as refused:
            if refused.code == "http_409" and refused.size is not None and refused.size != old:
                old = refused.size
                continue
            raise
        try:
            lines = Note.parse("x\n\n" + answer.decode("utf-8")).signatures
        except (UnicodeDecodeError, AuditIntegrityError):
            raise _Refused("garbage") from None
        text = stored.checkpoint.body().decode("utf-8")
        for line in lines:
            try:
                verify_cosignature(text, line, witness.key)
            except AuditIntegrityError:
                continue
            return line
        raise _Refused("no_valid_cosignature")
    raise _Refused("http_409")


def submit(deployment: Deployment, stored: StoredCheckpoint) -> list[Submission]:
    """Send ``stored`` to every witness that has not cosigned it yet; store what comes back."""
    witnesses, _ = configured(deployment.settings)
    done = _cosigners(stored, witnesses)
    missing = [w for w in witnesses if w.key.name not in done]
    if not missing:
        return []
    with deployment.reading() as connection:
        store = deployment.checkpoint_store(connection)
    results, gathered = [], []
    for witness in missing:
        old = deployment.witness_sizes.get(witness.url, 0)
        try:
            gathered.append(_submit_one(deployment, witness, stored, old))
        except _Refused as refused:
            _log.warning(
                "witness %s did not cosign the checkpoint of size %d: %s",
                witness.key.name,
                stored.size,
                refused.code,
            )
            results.append(Submission(witness.key.name, False, refused.code))
            continue
        deployment.witness_sizes[witness.url] = stored.size
        results.append(Submission(witness.key.name, True, "ok"))
    if gathered:
        store.append_cosignatures(stored.size, gathered)
    return results
