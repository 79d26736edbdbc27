from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import (
    GENESIS,
    AuditEntry,
    Bundle,
    Checkpoint,
    CheckpointSigner,
    CompactRange,
    PurgeMark,
    StoredEntry,
    dump_bundle,
    leaf_hash,
    load_bundle,
    verify_bundle,
    verify_log,
)
from errors import AuditIntegrityError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIGNER = CheckpointSigner(os.urandom(32))


def build(count: int, every: int = 4) -> tuple[list[StoredEntry], list[Checkpoint]]:
    """A valid log of ``count`` entries with a checkpoint every ``every`` and one at the end."""
    entries: list[StoredEntry] = []
    checkpoints: list[Checkpoint] = []
    tree = CompactRange()
    previous = GENESIS
    for seq in range(count):
        entry = AuditEntry(
            seq=seq,
            time=T0 + timedelta(minutes=seq),
            actor=f"client-{seq % 3}",
            role="partner",
            action="pseudonymise",
            purpose="p",
            outcome="ok",
            request_id=f"r{seq}",
            prev=previous,
            domains=("casino",),
        )
        data = entry.canonical()
        digest = leaf_hash(data)
        entries.append(StoredEntry(seq, data, digest))
        previous = digest.hex()
        tree.append(digest)
        if tree.size % every == 0 or seq == count - 1:
            checkpoints.append(
                SIGNER.sign(tree_size=tree.size, root=tree.root(), chain=previous, now=T0)
            )
    return entries, checkpoints


def check(entries: list[StoredEntry], checkpoints: list[Checkpoint]) -> int | None:
    """The sequence number verification blames, or None when it passes."""
    try:
        verify_log(entries, checkpoints, SIGNER.public_key)
    except AuditIntegrityError as error:
        return error.seq if error.seq is not None else -1
    return None


@given(count=st.integers(min_value=0, max_value=30), every=st.integers(min_value=1, max_value=9))
def test_valid_logs_always_verify(count: int, every: int) -> None:
    entries, checkpoints = build(count, every)
    result = verify_log(entries, checkpoints, SIGNER.public_key)
    assert (count, count) == (result.entries, result.tree_size)


@given(count=st.integers(min_value=1, max_value=25), data=st.data())
def test_changing_any_byte_of_any_entry_is_detected_at_that_entry(
    count: int, data: st.DataObject
) -> None:
    entries, checkpoints = build(count)
    victim = data.draw(st.integers(min_value=0, max_value=count - 1))
    stored = entries[victim]
    field = data.draw(st.sampled_from(["data", "hash"]))
    raw = bytearray(getattr(stored, field))
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    entries[victim] = (
        StoredEntry(stored.seq, bytes(raw), stored.hash)
        if field == "data"
        else StoredEntry(stored.seq, stored.data, bytes(raw))
    )
    assert victim == check(entries, checkpoints)


@given(count=st.integers(min_value=2, max_value=25), data=st.data())
def test_deleting_any_entry_is_detected_at_its_place(count: int, data: st.DataObject) -> None:
    entries, checkpoints = build(count)
    victim = data.draw(st.integers(min_value=0, max_value=count - 1))
    del entries[victim]
    assert victim == check(entries, checkpoints)


@given(count=st.integers(min_value=2, max_value=25), data=st.data())
def test_swapping_two_entries_is_detected_at_the_first(count: int, data: st.DataObject) -> None:
    entries, checkpoints = build(count)
    first = data.draw(st.integers(min_value=0, max_value=count - 2))
    second = data.draw(st.integers(min_value=first + 1, max_value=count - 1))
    entries[first], entries[second] = entries[second], entries[first]
    assert first == check(entries, checkpoints)


@given(count=st.integers(min_value=1, max_value=25), data=st.data())
def test_truncating_the_tail_is_detected_at_the_first_missing_entry(
    count: int, data: st.DataObject
) -> None:
    entries, checkpoints = build(count)
    keep = data.draw(st.integers(min_value=0, max_value=count - 1))
    assert keep == check(entries[:keep], checkpoints)


@given(count=st.integers(min_value=2, max_value=20), data=st.data())
def test_a_consistent_rewrite_is_caught_by_the_signed_checkpoints(
    count: int, data: st.DataObject
) -> None:
    """Rewriting an entry and re-chaining everything after it still breaks the signed root."""
    entries, checkpoints = build(count, every=4)
    victim = data.draw(st.integers(min_value=0, max_value=count - 1))
    previous = GENESIS if victim == 0 else entries[victim - 1].hash.hex()
    for seq in range(victim, count):
        entry = AuditEntry(
            seq=seq,
            time=T0,
            actor="forger",
            role="partner",
            action="x",
            purpose="p",
            outcome="ok",
            request_id="r",
            prev=previous,
        )
        digest = leaf_hash(entry.canonical())
        entries[seq] = StoredEntry(seq, entry.canonical(), digest)
        previous = digest.hex()
    # Blamed: the first entry after the last checkpoint that still holds.
    assert (victim // 4) * 4 == check(entries, checkpoints)


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    entries, checkpoints = build(5)
    other = CheckpointSigner(os.urandom(32))
    forged = [
        other.sign(tree_size=c.tree_size, root=c.root, chain=c.chain, now=T0) for c in checkpoints
    ]
    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(entries, forged, SIGNER.public_key)
    assert "bad_signature" == caught.value.code


def test_verification_after_a_purge_holds_for_the_rest() -> None:
    entries, checkpoints = build(20, every=5)
    prefix = CompactRange()
    for stored in entries[:8]:
        prefix.append(stored.hash)
    mark = PurgeMark(
        SIGNER.sign(tree_size=8, root=prefix.root(), chain=entries[7].hash.hex(), now=T0),
        tuple(prefix.nodes),
    )
    kept = [c for c in checkpoints if c.tree_size > 8]
    result = verify_log(entries[8:], kept, SIGNER.public_key, mark)
    assert (8, 12, 20) == (result.first_seq, result.entries, result.tree_size)
    # The first retained entry must still link to the purged one.
    with pytest.raises(AuditIntegrityError) as caught:
        verify_log(entries[9:], kept, SIGNER.public_key, mark)
    assert 8 == caught.value.seq
    # A purge record whose frontier was altered is refused.
    bad = PurgeMark(mark.checkpoint, (os.urandom(32),))
    with pytest.raises(AuditIntegrityError):
        verify_log(entries[8:], kept, SIGNER.public_key, bad)


def test_bundles_round_trip_and_verify_offline() -> None:
    entries, checkpoints = build(12)
    data = dump_bundle(Bundle(SIGNER.public_key, tuple(entries), tuple(checkpoints), None, T0))
    assert 12 == verify_bundle(data).entries
    loaded = load_bundle(data)
    assert tuple(entries) == loaded.entries
    with pytest.raises(AuditIntegrityError) as caught:
        verify_bundle(data, expected_key="ed25519:0000000000000000")
    assert "unexpected_key" == caught.value.code


@given(data=st.data())
def test_any_edit_of_an_entry_inside_a_bundle_is_located(data: st.DataObject) -> None:
    entries, checkpoints = build(10)
    raw = json.loads(
        dump_bundle(Bundle(SIGNER.public_key, tuple(entries), tuple(checkpoints), None, T0))
    )
    victim = data.draw(st.integers(min_value=0, max_value=9))
    text = raw["entries"][victim]["entry"]
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(
        st.characters(min_codepoint=32, max_codepoint=126).filter(lambda c: c != text[position])
    )
    raw["entries"][victim]["entry"] = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(AuditIntegrityError) as caught:
        verify_bundle(json.dumps(raw).encode())
    assert victim == caught.value.seq


@pytest.mark.parametrize("data", [b"", b"{}", b"\x00\x01", b'{"format":"tiers-audit-export/1"}'])
def test_garbage_is_not_a_bundle(data: bytes) -> None:
    with pytest.raises(AuditIntegrityError):
        verify_bundle(data)
