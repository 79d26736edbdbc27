"""C2SP signed notes, verifier keys and cosignatures: known answers and properties.

Vectors: tests/vectors/c2sp_notes.json (signed-note@v1.0.0 through the Go reference example,
tlog-checkpoint@v1.0.0 and tlog-cosignature as stored on 2026-12).
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit import CheckpointSigner
from audit.checkpoint import checkpoint_from_note, note_key_name
from audit.note import (
    COSIGNATURE,
    ED25519,
    Note,
    VerifierKey,
    cosign,
    sign_note,
    verify_cosignature,
    verify_note,
)
from errors import AuditIntegrityError

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "c2sp_notes.json").read_text())
NOTE = VECTORS["signed_note"]
SPEC = VECTORS["checkpoint_with_cosignature"]


def _reference_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(NOTE["signer_key"].split("+", 4)[4])
    assert ED25519 == raw[0]
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_the_reference_signature_is_reproduced_byte_for_byte() -> None:
    private = _reference_key()
    assert NOTE["verifier_key"] == VerifierKey.of("PeterNeumann", private).encode()
    assert NOTE["signature_line"] == sign_note(NOTE["text"], "PeterNeumann", private).line()


def test_the_reference_note_verifies_and_a_changed_text_does_not() -> None:
    key = VerifierKey.parse(NOTE["verifier_key"])
    note = Note.parse(NOTE["text"] + "\n" + NOTE["signature_line"])
    assert [key] == verify_note(note, [key])
    changed = Note(note.text.replace("cryptography", "cryptographY"), note.signatures)
    with pytest.raises(AuditIntegrityError):
        verify_note(changed, [key])


def test_a_mangled_verifier_key_is_refused() -> None:
    text = NOTE["verifier_key"]
    for cut in (text[:-1], text[1:], text.replace("c74f20a3", "c74f20a4"), text + "+x"):
        with pytest.raises(AuditIntegrityError):
            VerifierKey.parse(cut)


def test_the_spec_cosignature_line_carries_its_key_id_and_time() -> None:
    note = Note.parse(SPEC["note"])
    assert SPEC["note"] == note.encode()
    log, witness = note.signatures
    assert SPEC["origin"] == log.name
    assert SPEC["cosigner"] == witness.name
    assert SPEC["cosigner_key_id"] == witness.key_id.hex()
    assert (SPEC["cosignature_time"],) == struct.unpack(">Q", witness.signature[:8])
    assert 72 == len(witness.signature)
    lines = note.text.split("\n")
    assert [SPEC["origin"], str(SPEC["tree_size"])] == lines[:2]


def test_unknown_signatures_are_ignored_but_no_known_one_is_refused() -> None:
    note = Note.parse(SPEC["note"])
    stranger = VerifierKey.of("example.com/behind-the-sofa", Ed25519PrivateKey.generate())
    with pytest.raises(AuditIntegrityError):
        verify_note(note, [stranger])  # same name, another key id: ignored, so none is known


@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=80
    ).map(lambda t: t + "\n"),
    timestamp=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_cosignatures_verify_with_their_time_and_not_for_another_text(
    text: str, timestamp: int
) -> None:
    private = Ed25519PrivateKey.generate()
    key = VerifierKey.of("cnil.example/w", private, COSIGNATURE)
    line = cosign(text, key.name, private, timestamp)
    assert timestamp == verify_cosignature(text, line, key).timestamp
    with pytest.raises(AuditIntegrityError):
        verify_cosignature(text + "x\n", line, key)
    plain = VerifierKey(key.name, ED25519, key.public_key)
    with pytest.raises(AuditIntegrityError):
        verify_cosignature(text, line, plain)


@given(size=st.integers(min_value=0, max_value=2**40), root=st.binary(min_size=32, max_size=32))
def test_a_checkpoint_round_trips_through_its_signed_note(size: int, root: bytes) -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate().private_bytes_raw())
    now = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
    checkpoint = signer.sign(
        tree_size=size, root=root, chain="ab" * 32, now=now, origin="tiers/0123456789abcdef"
    )
    note = checkpoint.note(signer.public_key)
    text = note.encode()
    assert text.startswith(f"tiers/0123456789abcdef\n{size}\n")
    assert checkpoint == checkpoint_from_note(Note.parse(text), signer.public_key)
    key = signer.verifier_key("tiers/0123456789abcdef")
    assert [key] == verify_note(Note.parse(text), [VerifierKey.parse(key.encode())])
    other = CheckpointSigner(Ed25519PrivateKey.generate().private_bytes_raw())
    with pytest.raises(AuditIntegrityError):
        checkpoint_from_note(Note.parse(text), other.public_key)


def test_an_origin_with_spaces_signs_under_a_valid_key_name() -> None:
    assert "tiers-access-log" == note_key_name("tiers access log")
    assert "tiers/abc" == note_key_name("tiers/abc")


@given(data=st.text(max_size=200) | st.just(SPEC["note"]))
def test_a_note_parses_to_what_it_encodes_or_raises_the_integrity_error(data: str) -> None:
    try:
        note = Note.parse(data)
    except AuditIntegrityError:
        return
    assert data == note.encode()
