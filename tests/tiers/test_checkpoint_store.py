"""The checkpoint store's backward reads (what every signature starts from) agree with its full
read (what verification uses), whatever was appended and however small the blocks read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit import CheckpointSigner, CompactRange, leaf_hash
from audit.note import COSIGNATURE, VerifierKey, cosign
from errors import CheckpointStoreError
from tiers.storage import checkpoint_store
from tiers.storage.checkpoint_store import FILE_NAME, CheckpointStore

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ORIGIN = "tiers/0123456789abcdef"
SIGNER = CheckpointSigner(Ed25519PrivateKey.generate().private_bytes_raw())
WITNESS = Ed25519PrivateKey.generate()

Step = tuple[str, int]
steps = st.lists(
    st.tuples(st.sampled_from(["grow", "grow", "cosign", "purge", "torn"]), st.integers(1, 30)),
    max_size=25,
)


def _tree(size: int) -> CompactRange:
    tree = CompactRange()
    for n in range(size):
        tree.append(leaf_hash(n.to_bytes(4, "big")))
    return tree


def _append(store: CheckpointStore, size: int, *, purge: bool = False) -> None:
    tree = _tree(size)
    checkpoint = SIGNER.sign(
        tree_size=size, root=tree.root(), chain="ab" * 32, now=NOW, origin=ORIGIN
    )
    store.append_checkpoint(checkpoint, tree.nodes, purge=purge)


def _play(store: CheckpointStore, moves: list[Step]) -> None:
    size = 0
    for move, amount in moves:
        latest = store.latest()
        if move == "grow":
            size += amount
            _append(store, size)
        elif move == "purge" and size:
            _append(store, max(1, size - amount % 3), purge=True)  # at the newest size too
        elif move == "cosign" and latest is not None:
            text = latest.checkpoint.body().decode()
            store.append_cosignatures(latest.size, [cosign(text, "w/1", WITNESS, amount)])
        elif move == "torn":
            with store.path.open("ab") as handle:
                handle.write(b'{"kind": "checkpoint", "note": "' + b"x" * amount)


@given(moves=steps, block=st.sampled_from([5, 37, 300, 64 * 1024]))
def test_backward_reads_agree_with_the_full_read(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    moves: list[Step],
    block: int,
) -> None:
    monkeypatch.setattr(checkpoint_store, "BLOCK", block)
    store = CheckpointStore(tmp_path_factory.mktemp("store"), SIGNER.public_key)
    store.create(origin=ORIGIN, now=NOW)
    _play(store, moves)
    fresh = CheckpointStore(store.directory, SIGNER.public_key)  # another process
    everything = fresh.records()
    grown = [r for r in everything if not r.purge]
    assert (grown[-1] if grown else None) == fresh.latest()
    for size in {r.size for r in everything}:
        assert [r for r in everything if r.size == size][-1] == fresh.at(size)
    assert fresh.at(10**9) is None
    assert ORIGIN == fresh.origin()
    key = VerifierKey.of("w/1", WITNESS, COSIGNATURE)
    for record in everything:
        assert all(line.name == key.name for line in record.cosignatures)


def test_a_record_that_does_not_verify_is_damage(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, SIGNER.public_key)
    store.create(origin=ORIGIN, now=NOW)
    _append(store, 3)
    path = tmp_path / FILE_NAME
    path.write_text(
        path.read_text().replace('"purge": false', '"purge": false, "x": 1')[:-30] + "\n"
    )
    with pytest.raises(CheckpointStoreError) as found:
        CheckpointStore(tmp_path, SIGNER.public_key).latest()
    assert "checkpoint_store_damaged" == found.value.code
