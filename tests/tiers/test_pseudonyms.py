from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from errors import (
    DomainMismatch,
    InvalidIdentifier,
    InvalidPseudonym,
    KeyDestroyed,
    UnknownKeyVersion,
)
from keys import DomainKey, Keyring, length_prefixed, new_key_material
from tiers.identifiers import NormalisationOptions, get_kind
from tiers.pseudonyms import (
    PSEUDONYM_BYTES,
    Pseudonym,
    b32_text,
    b32_texts,
    base_pseudonym,
    domain_pseudonym,
    parse_for_domain,
    parse_many_for_domain,
    pseudonym_value,
    pseudonym_values,
)
from tiers.storage.domains import DomainRecord
from tiers.tokenisation import Tokeniser

T0 = datetime(2026, 1, 1, tzinfo=UTC)
names = st.from_regex(r"[a-z][a-z0-9-]{1,31}", fullmatch=True)
values = st.binary(min_size=PSEUDONYM_BYTES, max_size=PSEUDONYM_BYTES)


def keyring(owner: str = "casino") -> Keyring:
    return Keyring.create(owner=owner, purpose="pseudonym", material=new_key_material(), now=T0)


BASE = Keyring.create(owner="_service", purpose="base", material=new_key_material(), now=T0).active
CASINO = keyring("casino")
SNCF = keyring("sncf")


def key(ring: Keyring) -> DomainKey:
    return ring.active


@given(kind=st.sampled_from(["card", "email"]), value=st.text(min_size=1, max_size=40))
def test_pseudonyms_are_deterministic(kind: str, value: str) -> None:
    b = base_pseudonym(BASE, kind, value)
    assert b == base_pseudonym(BASE, kind, value)
    assert domain_pseudonym(CASINO.active, "casino", b) == domain_pseudonym(
        CASINO.active, "casino", b
    )


@given(value=st.text(min_size=1, max_size=40))
def test_domains_are_separated(value: str) -> None:
    b = base_pseudonym(BASE, "card", value)
    in_casino = domain_pseudonym(CASINO.active, "casino", b)
    in_sncf = domain_pseudonym(SNCF.active, "sncf", b)
    assert in_casino.value != in_sncf.value
    assert str(in_casino) != str(in_sncf)
    with pytest.raises(DomainMismatch):
        parse_for_domain(str(in_casino), domain="sncf", keyring=SNCF)


@given(
    a=st.text(max_size=10), b=st.text(max_size=10), c=st.text(max_size=10), d=st.text(max_size=10)
)
def test_base_encoding_is_unambiguous(a: str, b: str, c: str, d: str) -> None:
    left = length_prefixed(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
    right = length_prefixed(c.encode("utf-8", "surrogatepass"), d.encode("utf-8", "surrogatepass"))
    assert (left == right) == ((a, b) == (c, d))


def test_kind_is_part_of_the_base_pseudonym() -> None:
    assert base_pseudonym(BASE, "card", "12345678") != base_pseudonym(BASE, "phone", "12345678")
    # "ab"+"c" and "a"+"bc" must not meet.
    assert base_pseudonym(BASE, "ab", "c") != base_pseudonym(BASE, "a", "bc")


@given(domain=names, version=st.integers(min_value=1, max_value=10**9 - 1), value=values)
def test_text_form_round_trips_exactly(domain: str, version: int, value: bytes) -> None:
    pseudonym = Pseudonym(domain, version, value)
    text = str(pseudonym)
    assert pseudonym == Pseudonym.parse(text)
    assert text == str(Pseudonym.parse(text))
    assert len(text.rsplit(".", 1)[1]) == 32


@given(domain=names, value=values, data=st.data())
def test_any_altered_text_is_not_a_pseudonym_or_is_another_one(
    domain: str, value: bytes, data: st.DataObject
) -> None:
    text = str(Pseudonym(domain, 1, value))
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.characters())
    altered = text[:position] + replacement + text[position + 1 :]
    if altered == text:
        return
    try:
        parsed = Pseudonym.parse(altered)
    except InvalidPseudonym:
        return
    assert str(parsed) == altered  # parsing is exact: nothing is silently repaired


@pytest.mark.parametrize(
    "text",
    [
        "",
        "casino",
        "casino.v1",
        "casino.v0.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "casino.v01.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "casino.v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
        " casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
    ],
)
def test_malformed_pseudonyms_are_refused(text: str) -> None:
    with pytest.raises(InvalidPseudonym):
        Pseudonym.parse(text)


def test_rotation_changes_pseudonym_and_version_and_old_version_still_parses() -> None:
    ring = keyring()
    b = base_pseudonym(BASE, "card", "497010123456")
    old = domain_pseudonym(ring.active, "casino", b)
    rotated = ring.rotated(new_key_material(), T0)
    new = domain_pseudonym(rotated.active, "casino", b)
    assert (old.version, new.version) == (1, 2)
    assert old.value != new.value
    assert old == parse_for_domain(str(old), domain="casino", keyring=rotated)
    assert new == parse_for_domain(str(new), domain="casino", keyring=rotated)


def test_unknown_and_destroyed_versions_are_refused() -> None:
    ring = keyring().rotated(new_key_material(), T0)
    b = base_pseudonym(BASE, "card", "497010123456")
    old = domain_pseudonym(ring.active, "casino", b)
    future = Pseudonym("casino", 9, old.value)
    with pytest.raises(UnknownKeyVersion):
        parse_for_domain(str(future), domain="casino", keyring=ring)
    first = Pseudonym("casino", 1, old.value)
    with pytest.raises(KeyDestroyed):
        parse_for_domain(str(first), domain="casino", keyring=ring.destroyed(1, T0))


def test_many_texts_parse_each_in_its_place() -> None:
    ring = keyring().rotated(new_key_material(), T0).destroyed(1, T0)
    good = domain_pseudonym(ring.active, "casino", base_pseudonym(BASE, "card", "497010123456"))
    texts = [
        f"  {good} ",
        "casino.v2.not-a-pseudonym",
        str(Pseudonym("sncf", 2, good.value)),
        str(Pseudonym("casino", 9, good.value)),
        str(Pseudonym("casino", 1, good.value)),
        str(good),
    ]
    parsed = parse_many_for_domain(texts, domain="casino", keyring=ring)
    assert parsed[0] == parsed[5] == (2, good.value)
    assert [type(p) for p in parsed[1:5]] == [
        InvalidPseudonym,
        DomainMismatch,
        UnknownKeyVersion,
        KeyDestroyed,
    ]
    assert parse_many_for_domain([], domain="casino", keyring=ring) == []


@given(st.binary(min_size=20, max_size=20))
@example(b"\x00" * 20)
@example(b"\xff" * 20)
@example(bytes(range(20)))
def test_b32_text_is_rfc4648_base32_in_lower_case(value: bytes) -> None:
    assert base64.b32encode(value).decode("ascii").lower() == b32_text(value)


@given(st.lists(values, max_size=300))
@example([b"\x00" * 20, b"\xff" * 20, bytes(range(20))])
def test_b32_texts_is_b32_text_of_each_value(batch: list[bytes]) -> None:
    expected = [base64.b32encode(value).decode("ascii").lower() for value in batch]
    assert expected == b32_texts(batch)


@pytest.mark.parametrize("batch", [[b"\x00" * 19], [b"\x00" * 21, b"\x00" * 19], [b"", b"x" * 40]])
def test_b32_texts_refuses_a_value_of_another_length(batch: list[bytes]) -> None:
    with pytest.raises(ValueError, match="20-byte"):
        b32_texts(batch)


@given(
    kind=st.sampled_from(["card", "email", "phone"]),
    value=st.one_of(
        st.text(max_size=30),
        st.from_regex(r"[0-9 ]{8,19}", fullmatch=True),
        st.from_regex(r"[a-zA-Z0-9.]{1,10}@[a-z]{1,8}\.[a-z]{2,3}", fullmatch=True),
        st.from_regex(r"\+336[0-9]{8}", fullmatch=True),
    ),
)
def test_the_tokeniser_gives_the_two_layer_pseudonyms(kind: str, value: str) -> None:
    """The hot path's shortcuts (kind prefix cached, table base32) change nothing."""
    identifier = get_kind(kind)
    options = NormalisationOptions()
    tokeniser = Tokeniser(
        DomainRecord(1, "casino", "partner", False, T0), BASE, CASINO.active, options
    )
    try:
        normalised = identifier.normaliser(value, options)
    except InvalidIdentifier:
        with pytest.raises(InvalidIdentifier):
            tokeniser.tokenise(identifier, value)
        return
    base = base_pseudonym(BASE, kind, normalised)
    expected = domain_pseudonym(CASINO.active, "casino", base)
    assert (base, expected.value, str(expected)) == tokeniser.tokenise(identifier, value)


IDENTIFIER_VALUES = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[0-9 ]{8,19}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9.]{1,10}@[a-z]{1,8}\.[a-z]{2,3}", fullmatch=True),
    st.from_regex(r"\+336[0-9]{8}", fullmatch=True),
)


@given(kind=st.sampled_from(["card", "email", "phone"]), batch=st.lists(IDENTIFIER_VALUES))
def test_tokenise_many_is_tokenise_of_each_value(kind: str, batch: list[str]) -> None:
    """In order, each error in its value's place, whatever mix of valid and invalid values."""
    identifier = get_kind(kind)
    tokeniser = Tokeniser(
        DomainRecord(1, "casino", "partner", False, T0), BASE, CASINO.active, NormalisationOptions()
    )
    expected: list[object] = []
    for value in batch:
        try:
            expected.append(tokeniser.tokenise(identifier, value))
        except InvalidIdentifier as error:
            expected.append(error.code)
    outcomes = tokeniser.tokenise_many(identifier, batch)
    got = [o.code if isinstance(o, InvalidIdentifier) else o for o in outcomes]
    assert expected == got


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_pseudonym_values_is_pseudonym_value_of_each_base(bases: list[bytes]) -> None:
    expected = [pseudonym_value(CASINO.active, base) for base in bases]
    assert expected == pseudonym_values(CASINO.active, bases)
