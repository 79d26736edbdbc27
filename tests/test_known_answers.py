"""The scheme pinned by known answers (tests/vectors/known_answers.json): fixed keys give these
exact pseudonyms (of both schemes), card references, hub keys, subject references, wrapped key,
seal, audit entry hash and signed checkpoint, byte for byte.

The vectors were computed with the standard library's hmac and hashlib (and pyca/cryptography
for AES-GCM and Ed25519), not with the helpers tested here. They are the compatibility
contract: a change that breaks one would orphan stored data, and needs a migration, not a new
vector.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from audit import CheckpointSigner, leaf_hash
from audit.entry import AuditEntry, Counts
from keys import KeyIdentity, Keyring, MasterKey, length_prefixed, unwrap_key
from keys.keyring import DomainKey
from keys.rows import RowSealer
from tiers.cards import card_ref
from tiers.identifiers import NormalisationOptions, get_kind
from tiers.pseudonyms import Pseudonym, base_pseudonym, domain_pseudonym, pseudonym_value
from tiers.schemes import ElementBase, ElementKey

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "known_answers.json").read_text(encoding="utf-8")
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _key(name: str, owner: str) -> DomainKey:
    material = bytes.fromhex(VECTORS["keys"][name])
    return Keyring.create(owner=owner, purpose="pseudonym", material=material, now=NOW).active


@pytest.mark.parametrize("vector", VECTORS["identifiers"], ids=lambda v: v["kind"])
def test_each_spelling_gives_the_known_pseudonyms(vector: dict[str, Any]) -> None:
    kind, options = get_kind(vector["kind"]), NormalisationOptions(phone_region="FR")
    for spelling in vector["spellings"]:
        assert vector["normalised"] == kind.normaliser(spelling, options)
    base = base_pseudonym(_key("base", "_service"), vector["kind"], vector["normalised"])
    assert vector["base"] == base.hex()
    casino = domain_pseudonym(_key("casino_v1", "casino"), "casino", base)
    assert vector["casino_pseudonym"] == str(casino)
    assert casino == Pseudonym.parse(vector["casino_pseudonym"])
    audit = domain_pseudonym(_key("audit_v1", "audit"), "audit", base)
    assert vector["subject_reference"] == str(audit)
    if vector["kind"] == "card":
        ref = card_ref(_key("base", "_service"), "casino", base)
        assert vector["card_ref_at_casino"] == ref.hex()
        hub = Pseudonym("hub", 1, pseudonym_value(_key("hub_v1", "hub"), ref))
        assert vector["hub_card_key"] == str(hub)


@pytest.mark.parametrize("vector", VECTORS["identifiers"], ids=lambda v: v["kind"])
def test_the_oprf_scheme_gives_the_known_elements(vector: dict[str, Any]) -> None:
    """Under ``oprf`` (tiers.schemes): ``B = k·H(x)`` and ``P = s·H(x)``, ``P`` reached from
    ``B`` and back without the identifier."""
    base_fn = ElementBase.of(_key("base", "_service"))
    casino = ElementKey.of("casino", _key("casino_v1", "casino"), base_fn)
    encoded = length_prefixed(vector["kind"].encode(), vector["normalised"].encode())
    [base] = base_fn.bases([encoded])
    assert vector["oprf_base"] == base.hex()
    [value] = casino.values([base])
    assert vector["oprf_casino_pseudonym"] == str(Pseudonym("casino", 1, value))
    assert casino.bases([value]) == [base]
    assert Pseudonym.parse(vector["oprf_casino_pseudonym"]).value == value


def test_the_known_wrapped_key_unwraps_to_its_material() -> None:
    vector = VECTORS["wrapped_key"]
    master = MasterKey(bytes.fromhex(VECTORS["keys"]["master"]), source="known answers")
    identity = KeyIdentity(
        purpose=vector["purpose"], owner=vector["owner"], version=vector["version"]
    )
    material = unwrap_key(master, bytes.fromhex(vector["wrapped"]), identity)
    assert VECTORS["keys"][vector["material_is"]] == material.hex()


def test_the_known_seal_of_a_client_row() -> None:
    master = MasterKey(bytes.fromhex(VECTORS["keys"]["master"]), source="known answers")
    vector = VECTORS["client_seal"]
    assert vector["seal"] == RowSealer(master).seal("client", vector["fields"])


def test_the_known_entry_and_its_leaf_hash() -> None:
    vector = VECTORS["audit_entry"]
    fields = dict(vector["fields"])
    counts = fields.pop("counts")
    entry = AuditEntry(
        **{**fields, "time": NOW, "domains": tuple(fields["domains"])},
        counts=Counts(counts["in"], counts["out"], counts["rejected"]),
    )
    assert vector["canonical"].encode() == entry.canonical()
    assert vector["leaf_hash"] == leaf_hash(entry.canonical()).hex()


def test_the_known_checkpoint_note_and_verifier_key() -> None:
    vector = VECTORS["checkpoint"]
    signer = CheckpointSigner(bytes.fromhex(VECTORS["keys"]["signing"]))
    checkpoint = signer.sign(
        tree_size=vector["tree_size"],
        root=bytes.fromhex(vector["root"]),
        chain=vector["chain"],
        now=datetime.strptime(vector["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
        origin=vector["origin"],
    )
    assert vector["note"] == checkpoint.note(signer.public_key).encode()
    assert vector["verifier_key"] == signer.verifier_key(vector["origin"]).encode()
