"""The witness's add-checkpoint decisions, as c2sp.org/tlog-witness specifies each answer, and
a property: whatever order checkpoints of two diverging histories arrive in, the witness
cosigns only one history, each cosigned tree extending the one before."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit import CheckpointSigner, consistency_proof, leaf_hash, root
from audit.merkle import verify_consistency
from audit.note import Note, verify_cosignature
from errors import AlreadyExists, InvalidRequest
from tiers.witness import WitnessHome, init_witness

ORIGIN = "tiers/0123456789abcdef"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _log() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate().private_bytes_raw())


def _leaves(history: str, size: int) -> list[bytes]:
    return [leaf_hash(f"{history}:{i}".encode()) for i in range(size)]


def _request(
    log: CheckpointSigner, old: int, size: int, history: str = "a", proof_of: str | None = None
) -> bytes:
    leaves = _leaves(history, size)
    signed = log.sign(tree_size=size, root=root(leaves), chain="0" * 64, now=NOW, origin=ORIGIN)
    proof_leaves = _leaves(proof_of or history, size)
    proof = consistency_proof(old, size, proof_leaves) if 0 < old <= size else []
    head = "\n".join([f"old {old}", *(base64.b64encode(p).decode() for p in proof)])
    return (head + "\n\n" + signed.note(log.public_key).encode()).encode()


@pytest.fixture
def log() -> CheckpointSigner:
    return _log()


@pytest.fixture
def witness(tmp_path: Path, log: CheckpointSigner) -> WitnessHome:
    init_witness(tmp_path / "w", "cnil.test/w1")
    return WitnessHome(tmp_path / "w", [log.verifier_key(ORIGIN)])


def test_a_first_checkpoint_is_cosigned_and_the_cosignature_verifies(
    witness: WitnessHome, log: CheckpointSigner
) -> None:
    body = _request(log, 0, 5)
    answer = witness.add_checkpoint(body)
    assert 200 == answer.status
    note = Note.parse(body.decode().split("\n\n", 1)[1])
    (line,) = Note.parse("x\n\n" + answer.body).signatures
    assert "cnil.test/w1" == verify_cosignature(note.text, line, witness.key).witness


def test_each_refusal_has_the_status_the_spec_gives_it(
    witness: WitnessHome, log: CheckpointSigner
) -> None:
    assert 400 == witness.add_checkpoint(b"old 01\n\nnot a note").status
    assert 400 == witness.add_checkpoint(b"no blank line").status
    assert 403 == witness.add_checkpoint(_request(_other_key_same_origin(), 0, 5)).status
    assert 200 == witness.add_checkpoint(_request(log, 0, 5)).status
    stale = witness.add_checkpoint(_request(log, 3, 8))
    assert (409, "5\n", "text/x.tlog.size") == (stale.status, stale.body, stale.content_type)
    assert 400 == witness.add_checkpoint(_request(log, 9, 8)).status
    assert 422 == witness.add_checkpoint(_request(log, 5, 8, "b", proof_of="b")).status
    assert 409 == witness.add_checkpoint(_request(log, 5, 5, "b")).status
    assert 2 == len(witness.conflicts())
    assert 200 == witness.add_checkpoint(_request(log, 5, 8)).status


def test_an_unknown_log_is_not_found(witness: WitnessHome) -> None:
    stranger = _log()
    leaves = _leaves("a", 2)
    signed = stranger.sign(
        tree_size=2, root=root(leaves), chain="0" * 64, now=NOW, origin="tiers/other"
    )
    body = b"old 0\n\n" + signed.note(stranger.public_key).encode().encode()
    assert 404 == witness.add_checkpoint(body).status


def _other_key_same_origin() -> CheckpointSigner:
    return _log()


def test_a_witness_home_is_made_once(tmp_path: Path) -> None:
    init_witness(tmp_path / "w", "cnil.test/w1")
    with pytest.raises(AlreadyExists):
        init_witness(tmp_path / "w", "cnil.test/w1")
    with pytest.raises(InvalidRequest):
        init_witness(tmp_path / "x", "a name with spaces")
    assert "private key redacted" in repr(WitnessHome(tmp_path / "w", []))


@given(
    steps=st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(min_value=1, max_value=40)),
        min_size=1,
        max_size=12,
    )
)
def test_a_witness_cosigns_one_history_only(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    """Model: the witness's size and history; each request claims to extend the size the
    witness has. Histories a and b share nothing, so once one is cosigned, the other's
    checkpoints are refused; a cosigned size never goes down."""
    log = _log()
    home = tmp_path_factory.mktemp("w")
    init_witness(home, "cnil.test/w1")
    witness = WitnessHome(home, [log.verifier_key(ORIGIN)])
    size, history = 0, None
    for claimed, grow in steps:
        new = size + grow
        answer = witness.add_checkpoint(_request(log, size, new, claimed))
        consistent = history in (None, claimed)
        assert (200 if consistent else 422) == answer.status
        if consistent:
            if size:
                old, now = _leaves(claimed, size), _leaves(claimed, new)
                assert verify_consistency(
                    size, new, root(old), root(now), consistency_proof(size, new, now)
                )
            size, history = new, claimed


def test_cosignature_times_never_go_back(witness: WitnessHome, log: CheckpointSigner) -> None:
    """A clock that jumps back does not make a cosignature older than the last one."""
    assert 200 == witness.add_checkpoint(_request(log, 0, 3)).status
    state = json.loads((witness.home / "state.json").read_text())
    ahead = int(time.time()) + 10**6  # as if the clock had been far ahead, then set back
    state[ORIGIN]["time"] = ahead
    (witness.home / "state.json").write_text(json.dumps(state))
    body = _request(log, 3, 5)
    answer = witness.add_checkpoint(body)
    note = Note.parse(body.decode().split("\n\n", 1)[1])
    (line,) = Note.parse("x\n\n" + answer.body).signatures
    assert ahead == verify_cosignature(note.text, line, witness.key).timestamp
