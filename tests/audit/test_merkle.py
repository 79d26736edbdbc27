from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from errors import AuditIntegrityError

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "rfc6962_merkle.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(h)) for h in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["roots"]]


def test_roots_match_the_reference_tree_for_every_prefix() -> None:
    for size, expected in enumerate(ROOTS):
        assert expected == root(LEAVES[:size])


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}of{c['size']}")
def test_inclusion_proofs_match_the_reference(case: dict[str, object]) -> None:
    index, size = int(case["index"]), int(case["size"])  # type: ignore[call-overload]
    expected = [bytes.fromhex(h) for h in case["proof"]]  # type: ignore[attr-defined]
    assert expected == inclusion_proof(index, size, LEAVES)
    assert verify_inclusion(index, size, LEAVES[index], expected, ROOTS[size])


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['old']}to{c['new']}")
def test_consistency_proofs_match_the_reference(case: dict[str, object]) -> None:
    old, new = int(case["old"]), int(case["new"])  # type: ignore[call-overload]
    expected = [bytes.fromhex(h) for h in case["proof"]]  # type: ignore[attr-defined]
    assert expected == consistency_proof(old, new, LEAVES)
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


def test_the_rfc_example_tree_of_seven_leaves() -> None:
    """RFC 6962 §2.1.3: the audit paths and consistency proofs of its 7-leaf example tree."""
    a, b, c, d, e, f, j = LEAVES[:7]
    g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's own names
    assert node_hash(k, l) == root(LEAVES[:7])
    assert [b, h, l] == inclusion_proof(0, 7, LEAVES)
    assert [c, g, l] == inclusion_proof(3, 7, LEAVES)
    assert [f, j, k] == inclusion_proof(4, 7, LEAVES)
    assert [i, k] == inclusion_proof(6, 7, LEAVES)
    assert [c, d, g, l] == consistency_proof(3, 7, LEAVES)
    assert [l] == consistency_proof(4, 7, LEAVES)
    assert [i, j, k] == consistency_proof(6, 7, LEAVES)


many = st.lists(st.binary(max_size=8), min_size=1, max_size=40).map(
    lambda items: [leaf_hash(x) for x in items]
)


@given(leaves=many, data=st.data())
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    size = data.draw(st.integers(min_value=1, max_value=len(leaves)))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(index, size, leaves)
    top = root(leaves[:size])
    assert verify_inclusion(index, size, leaves[index], proof, top)
    with pytest.raises(AuditIntegrityError):
        verify_inclusion(index, size, leaf_hash(b"not in the log"), proof, top)
    if size > 1:
        other = (index + 1) % size
        if leaves[other] != leaves[index]:
            with pytest.raises(AuditIntegrityError):
                verify_inclusion(other, size, leaves[index], proof, top)
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(index, size, leaves[index], proof[:-1], top)
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(index, size, leaves[index], [*proof, leaves[0]], top)


@given(leaves=many, data=st.data())
def test_every_consistency_proof_verifies_and_a_wrong_one_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    new = data.draw(st.integers(min_value=0, max_value=len(leaves)))
    old = data.draw(st.integers(min_value=0, max_value=new))
    proof = consistency_proof(old, new, leaves)
    assert verify_consistency(old, new, root(leaves[:old]), root(leaves[:new]), proof)
    if 0 < old < new:
        forged = leaf_hash(b"rewritten history")
        with pytest.raises(AuditIntegrityError):
            verify_consistency(old, new, root([forged, *leaves[1:old]]), root(leaves[:new]), proof)
        with pytest.raises(AuditIntegrityError):
            verify_consistency(old, new, root(leaves[:old]), root(leaves[:new]), proof[:-1])
        with pytest.raises(AuditIntegrityError):
            verify_consistency(old, new, root(leaves[:old]), root(leaves[:new]), [])


@given(leaves=st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_compact_range_root_equals_the_full_root(leaves: list[bytes]) -> None:
    rng = CompactRange()
    for count, leaf in enumerate(leaves, start=1):
        rng.append(leaf)
        assert root(leaves[:count]) == rng.root()
        assert count == rng.size


@given(
    leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=2, max_size=40), data=st.data()
)
def test_proofs_after_the_prefix_is_pruned_match_the_full_tree(
    leaves: list[bytes], data: st.DataObject
) -> None:
    base = data.draw(st.integers(min_value=1, max_value=len(leaves) - 1))
    prefix = CompactRange()
    for leaf in leaves[:base]:
        prefix.append(leaf)
    size = data.draw(st.integers(min_value=base + 1, max_value=len(leaves)))
    index = data.draw(st.integers(min_value=base, max_value=size - 1))
    assert inclusion_proof(index, size, leaves) == inclusion_proof(
        index, size, leaves[base:], prefix
    )
    assert consistency_proof(base, size, leaves) == consistency_proof(
        base, size, leaves[base:], prefix
    )


@given(sizes=st.tuples(st.integers(1, 300), st.integers(0, 300)).map(lambda t: (t[0], t[0] + t[1])))
def test_a_consistency_proof_needs_only_the_old_trees_compact_range(
    sizes: tuple[int, int],
) -> None:
    """The signer proves a new tree from its last checkpoint's compact range and the entries
    after it, without the older entries: the proof is the one made from every leaf, and it
    verifies (RFC 9162 §2.1.4)."""
    old, new = sizes
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(new)]
    prefix = CompactRange()
    for leaf in leaves[:old]:
        prefix.append(leaf)
    proof = consistency_proof(old, new, leaves[old:], prefix)
    assert consistency_proof(old, new, leaves) == proof
    assert verify_consistency(old, new, root(leaves[:old]), root(leaves), proof)
