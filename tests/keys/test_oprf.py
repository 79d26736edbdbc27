"""The oblivious function (RFC 9497, ristretto255-SHA512) against the RFC's own test vectors in
both modes, and its properties: a blind changes nothing of the output, another key gives an
unrelated one, a wrong proof is detected, malformed elements and the identity are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errors import InvalidRequest
from keys.oprf import (
    Mode,
    OprfKey,
    blind,
    derive_key_pair,
    element,
    finalize,
    hash_to_group,
    rekeyed,
    rekeyed_with_proof,
    verify_proof,
)

pysodium = pytest.importorskip("pysodium")

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "rfc9497_ristretto255.json").read_text()
)
SEED, INFO = bytes.fromhex(VECTORS["seed"]), bytes.fromhex(VECTORS["key_info"])


def hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


@pytest.mark.parametrize("mode", [Mode.OPRF, Mode.VOPRF])
def test_the_key_pair_is_derived_as_the_rfc_derives_it(mode: Mode) -> None:
    suite = VECTORS["oprf" if mode is Mode.OPRF else "voprf"]
    secret, public = derive_key_pair(SEED, INFO, mode)
    assert secret.hex() == suite["skSm"]
    if mode is Mode.VOPRF:
        assert public.hex() == suite["pkSm"]


@pytest.mark.parametrize("vector", VECTORS["oprf"]["vectors"], ids=["A.1.1.1", "A.1.1.2"])
def test_the_base_mode_gives_the_rfcs_values(vector: dict[str, Any]) -> None:
    key = OprfKey(*derive_key_pair(SEED, INFO, Mode.OPRF), mode=Mode.OPRF)
    (data,), (blinding,) = hexes(vector["input"]), hexes(vector["blind"])
    _, blinded = blind(data, Mode.OPRF, blinding)
    assert blinded.hex() == vector["blinded"][0]
    (evaluated,) = key.evaluate([blinded])
    assert evaluated.hex() == vector["evaluated"][0]
    assert finalize(data, blinding, evaluated).hex() == vector["output"][0]


@pytest.mark.parametrize(
    "vector", VECTORS["voprf"]["vectors"], ids=["A.1.2.1", "A.1.2.2", "A.1.2.3-batch-2"]
)
def test_the_verifiable_mode_gives_the_rfcs_values_and_proofs(vector: dict[str, Any]) -> None:
    secret, public = derive_key_pair(SEED, INFO, Mode.VOPRF)
    r = bytes.fromhex(vector["proof_random_scalar"])
    key = OprfKey(secret, public, Mode.VOPRF, lambda: r)
    inputs, blinds = hexes(vector["input"]), hexes(vector["blind"])
    blinded = [blind(data, Mode.VOPRF, b)[1] for data, b in zip(inputs, blinds, strict=True)]
    assert [b.hex() for b in blinded] == vector["blinded"]
    evaluated, proof = key.evaluate_with_proof(blinded)
    assert [e.hex() for e in evaluated] == vector["evaluated"]
    assert proof.hex() == vector["proof"]
    assert verify_proof(public, blinded, evaluated, proof)
    outputs = [finalize(d, b, e) for d, b, e in zip(inputs, blinds, evaluated, strict=True)]
    assert [o.hex() for o in outputs] == vector["output"]


IDENTIFIERS = st.binary(min_size=0, max_size=64)


@settings(max_examples=40)
@given(data=IDENTIFIERS)
def test_two_blindings_give_one_output_and_another_key_another(data: bytes) -> None:
    key = OprfKey(*derive_key_pair(b"k" * 32, b"casino v1", Mode.VOPRF))
    other = OprfKey(*derive_key_pair(b"k" * 32, b"sncf v1", Mode.VOPRF))
    outputs = []
    for k in (key, key, other):
        blinding, blinded = blind(data, Mode.VOPRF)
        evaluated, proof = k.evaluate_with_proof([blinded])
        assert verify_proof(k.public, [blinded], evaluated, proof)
        outputs.append(finalize(data, blinding, evaluated[0]))
    assert outputs[0] == outputs[1] != outputs[2]


@settings(max_examples=30)
@given(
    data=st.lists(IDENTIFIERS, min_size=1, max_size=6),
    victim=st.integers(0, 5),
    flip=st.integers(0, 255),
)
def test_a_wrong_proof_or_evaluation_is_detected(data: list[bytes], victim: int, flip: int) -> None:
    key = OprfKey(*derive_key_pair(b"s" * 32, b"hub v1", Mode.VOPRF))
    other = OprfKey(*derive_key_pair(b"s" * 32, b"hub v2", Mode.VOPRF))
    blinded = [blind(item, Mode.VOPRF)[1] for item in data]
    evaluated, proof = key.evaluate_with_proof(blinded)
    victim %= len(data)
    # one element evaluated under another key (a service that singles a partner out)
    forged = list(evaluated)
    forged[victim] = other.evaluate([blinded[victim]])[0]
    assert not verify_proof(key.public, blinded, forged, proof)
    # the proof itself altered
    position = flip % len(proof)
    altered = proof[:position] + bytes([proof[position] ^ 1]) + proof[position + 1 :]
    assert not verify_proof(key.public, blinded, evaluated, altered)
    # the right proof checked against another key's public element
    assert not verify_proof(other.public, blinded, evaluated, proof)


def test_malformed_elements_and_the_identity_are_refused_with_a_code() -> None:
    key = OprfKey(*derive_key_pair(b"e" * 32, b"casino v1", Mode.VOPRF))
    good = hash_to_group(b"x", Mode.VOPRF)
    not_canonical = b"\xff" * 32  # above the field's prime: no element encodes to it
    for bad in (bytes(32), b"\x01" * 31, good + b"\x00", not_canonical):
        with pytest.raises(InvalidRequest) as refused:
            key.evaluate([good, bad])
        assert refused.value.code == "bad_element"
        assert bad.hex() not in refused.value.message
    assert element(good) == good


def test_the_secret_is_not_in_the_keys_repr() -> None:
    secret, public = derive_key_pair(b"r" * 32, b"casino v1", Mode.VOPRF)
    key = OprfKey(secret, public)
    assert secret.hex() not in repr(key) and secret.hex()[:16] not in repr(key)


@settings(max_examples=30)
@given(
    data=IDENTIFIERS,
    seeds=st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)),
)
def test_re_keying_takes_one_key_s_element_to_another_s(
    data: bytes, seeds: tuple[bytes, bytes]
) -> None:
    old, new = (OprfKey(*derive_key_pair(seed, b"casino", Mode.VOPRF)) for seed in seeds)
    point = hash_to_group(data, Mode.VOPRF)
    (under_old,), (under_new,) = old.evaluate([point]), new.evaluate([point])
    assert rekeyed([under_old], new, old) == [under_new]  # without the input behind it
    assert rekeyed([under_new], old, new) == [under_old]
    assert rekeyed([under_old], old, old) == [under_old]


def test_re_keying_refuses_what_is_not_an_element() -> None:
    old = OprfKey(*derive_key_pair(b"a" * 32, b"casino", Mode.VOPRF))
    new = OprfKey(*derive_key_pair(b"b" * 32, b"casino", Mode.VOPRF))
    for bad in (bytes(32), b"\xff" * 32, b"\x01" * 31):
        with pytest.raises(InvalidRequest) as refused:
            rekeyed([bad], new, old)
        assert refused.value.code == "bad_element"


@settings(max_examples=20)
@given(
    data=st.lists(IDENTIFIERS, min_size=1, max_size=5),
    victim=st.integers(0, 4),
    flip=st.integers(0, 63),
)
def test_a_translation_proves_itself_against_the_two_published_keys(
    data: list[bytes], victim: int, flip: int
) -> None:
    """The proof of a re-keying (GenerateProof with A the source key's public element) holds
    for the translation, and fails for one result re-keyed otherwise, an altered proof, or
    the proof checked with the generator or with the keys swapped."""
    old, new, other = (
        OprfKey(*derive_key_pair(seed * 32, b"casino", Mode.VOPRF)) for seed in (b"o", b"n", b"x")
    )
    points = old.evaluate([hash_to_group(item, Mode.VOPRF) for item in data])
    moved, proof = rekeyed_with_proof(points, new, old)
    assert moved == rekeyed(points, new, old)
    assert verify_proof(new.public, points, moved, proof, generator=old.public)
    victim %= len(data)
    forged = list(moved)
    forged[victim] = rekeyed([points[victim]], other, old)[0]  # one result under another key
    assert not verify_proof(new.public, points, forged, proof, generator=old.public)
    altered = proof[:flip] + bytes([proof[flip] ^ 1]) + proof[flip + 1 :]
    assert not verify_proof(new.public, points, moved, altered, generator=old.public)
    assert not verify_proof(new.public, points, moved, proof)  # A the generator: not this proof
    assert not verify_proof(old.public, points, moved, proof, generator=new.public)
    assert not verify_proof(new.public, points, moved, proof, generator=bytes(32))  # identity
