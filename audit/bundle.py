"""Self-contained export bundles of the access log, verifiable offline with no database."""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO

from audit.checkpoint import Checkpoint, checkpoint_from_note, key_id
from audit.note import Note, VerifierKey, verify_cosignature
from audit.verify import PurgeMark, StoredEntry, Verification, verify_log
from errors import AuditIntegrityError

__all__ = ["Bundle", "dump_bundle", "load_bundle", "verify_bundle", "write_bundle"]

FORMAT = "tiers-audit-export/1"


@dataclass(frozen=True, slots=True)
class Bundle:
    public_key: bytes
    entries: tuple[StoredEntry, ...]
    checkpoints: tuple[Checkpoint, ...]
    purge: PurgeMark | None
    exported_at: datetime
    # The newest checkpoint as a signed note with the witnesses' cosignatures, if any.
    witnessed: str | None = None


def write_bundle(
    handle: IO[str],
    *,
    public_key: bytes,
    entries: Iterable[StoredEntry],
    checkpoints: Sequence[Checkpoint],
    purge: PurgeMark | None,
    exported_at: datetime,
    witnessed: str | None = None,
) -> None:
    """Stream a bundle as JSON, one entry per line (a diff points at the entry), so that memory
    does not grow with the log."""
    head = {
        "format": FORMAT,
        "exported_at": exported_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "public_key": base64.b64encode(public_key).decode(),
        "key": key_id(public_key),
        "purge": None
        if purge is None
        else {
            "checkpoint": purge.checkpoint.as_dict(),
            "frontier": [node.hex() for node in purge.frontier],
        },
        "checkpoints": [c.as_dict() for c in checkpoints],
        "witnessed": witnessed,
    }
    opening = json.dumps(head, sort_keys=True, indent=1)
    handle.write(opening[: opening.rindex("}")].rstrip() + ',\n "entries": [')
    separator = "\n"
    for entry in entries:
        record = {"seq": entry.seq, "entry": entry.data.decode("ascii"), "hash": entry.hash.hex()}
        handle.write(separator + json.dumps(record, sort_keys=True))
        separator = ",\n"
    handle.write("\n ]\n}\n")


def dump_bundle(bundle: Bundle) -> bytes:
    """The bundle as bytes (see :func:`write_bundle`)."""
    buffer = io.StringIO()
    write_bundle(
        buffer,
        public_key=bundle.public_key,
        entries=bundle.entries,
        checkpoints=bundle.checkpoints,
        purge=bundle.purge,
        exported_at=bundle.exported_at,
        witnessed=bundle.witnessed,
    )
    return buffer.getvalue().encode("ascii")


def _entries(raw: Sequence[object]) -> tuple[StoredEntry, ...]:
    out = []
    for position, item in enumerate(raw):
        try:
            if not isinstance(item, dict):
                raise TypeError("an entry record is an object")
            out.append(
                StoredEntry(
                    int(item["seq"]),
                    str(item["entry"]).encode("ascii"),
                    bytes.fromhex(item["hash"]),
                )
            )
        except (KeyError, TypeError, ValueError, UnicodeEncodeError):
            # Named by position: the record's own sequence number cannot be trusted.
            raise AuditIntegrityError(
                f"entry record {position} of the bundle is malformed", code="malformed_bundle"
            ) from None
    return tuple(out)


def load_bundle(data: bytes) -> Bundle:
    """Parse a bundle; raises :class:`AuditIntegrityError` when it is not one."""
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("not a bundle")
        public_key = base64.b64decode(raw["public_key"], validate=True)
        purge_raw = raw["purge"]
        purge = None
        if purge_raw is not None:
            purge = PurgeMark(
                Checkpoint.from_dict(purge_raw["checkpoint"]),
                tuple(bytes.fromhex(node) for node in purge_raw["frontier"]),
            )
        checkpoints = tuple(Checkpoint.from_dict(c) for c in raw["checkpoints"])
        exported_at = datetime.strptime(raw["exported_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        entries_raw = raw["entries"]
        if not isinstance(entries_raw, list):
            raise TypeError("entries is a list")
        witnessed = raw.get("witnessed")
        if witnessed is not None and not isinstance(witnessed, str):
            raise TypeError("witnessed is a note")
    except (
        UnicodeDecodeError,
        json.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        binascii.Error,
    ):
        raise AuditIntegrityError("not a tiers audit export", code="malformed_bundle") from None
    return Bundle(
        public_key,
        _entries(entries_raw),
        checkpoints,
        purge,
        exported_at.replace(tzinfo=UTC),
        witnessed,
    )


def verify_bundle(
    data: bytes,
    *,
    expected_key: str | None = None,
    witnesses: Sequence[VerifierKey] = (),
    quorum: int | None = None,
) -> Verification:
    """Verify an exported bundle offline. ``expected_key`` pins the checkpoint key fingerprint
    (``ed25519:…``): without it, the bundle's own key is trusted, which proves integrity only
    against whoever did not hold the signing key. With ``witnesses``, the bundle's newest
    checkpoint must also carry valid cosignatures of ``quorum`` of them (default: all), which
    proves it against whoever held the signing key but could not make the witnesses agree."""
    bundle = load_bundle(data)
    if expected_key is not None and key_id(bundle.public_key) != expected_key:
        raise AuditIntegrityError(
            f"the bundle is signed by {key_id(bundle.public_key)}, not {expected_key}",
            code="unexpected_key",
        )
    witnessed = _witnessed(bundle) if bundle.witnessed is not None else None
    checkpoints = [*bundle.checkpoints, *([witnessed[0]] if witnessed else [])]
    result = verify_log(bundle.entries, checkpoints, bundle.public_key, bundle.purge)
    if not witnesses:
        return result
    if witnessed is None:
        raise AuditIntegrityError("the bundle carries no witnessed checkpoint", code="unwitnessed")
    checkpoint, note = witnessed
    text = note.text
    cosigned = set()
    for key in witnesses:
        for line in note.signatures:
            try:
                verify_cosignature(text, line, key)
            except AuditIntegrityError:
                continue
            cosigned.add(key.name)
    needed = quorum or len(witnesses)
    if len(cosigned) < needed:
        raise AuditIntegrityError(
            f"the checkpoint of size {checkpoint.tree_size} is cosigned by {len(cosigned)} of "
            f"the {len(witnesses)} witnesses given, not {needed}",
            code="unwitnessed",
        )
    return replace(
        result,
        notes=(
            f"checkpoint of size {checkpoint.tree_size} cosigned by {', '.join(sorted(cosigned))}",
        ),
    )


def _witnessed(bundle: Bundle) -> tuple[Checkpoint, Note]:
    assert bundle.witnessed is not None
    note = Note.parse(bundle.witnessed)
    return checkpoint_from_note(note, bundle.public_key), note
