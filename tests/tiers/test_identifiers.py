from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errors import InvalidIdentifier
from tiers.identifiers import KINDS, NormalisationOptions, luhn_valid, normalise

LUHN = NormalisationOptions(card_luhn=True)


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("card", " 4970 1012-3456 ", "497010123456"),
        ("card", "4970101234 56", "497010123456"),
        ("email", "  Jean.Dupont@Example.FR ", "jean.dupont@example.fr"),
        ("email", "ｊｅａｎ@ｅｘａｍｐｌｅ.ｆｒ", "jean@example.fr"),  # NFKC folds full-width forms
        ("phone", "06 12 34 56 78", "+33612345678"),
        ("phone", "+33 (0)6 12 34 56 78", "+33612345678"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("person", " Dupont | Jean | 1970-01-31 | 75 001", "DUPONT|JEAN|1970-01-31|75001"),
        (
            "person",
            "Lætitia-Hélène|Zoë  Marie|2001-02-28|69002",
            "LAETITIA-HELENE|ZOE MARIE|2001-02-28|69002",
        ),
        ("person", "d’Artagnan|Charles|1900-12-01|32000", "D'ARTAGNAN|CHARLES|1900-12-01|32000"),
    ],
)
def test_normalisers_give_the_documented_canonical_form(kind: str, raw: str, expected: str) -> None:
    assert expected == normalise(kind, raw)


@pytest.mark.parametrize(
    ("kind", "raw", "code"),
    [
        ("card", "", "empty"),
        ("card", "   ", "empty"),
        ("card", "1234567", "bad_length"),
        ("card", "1" * 20, "bad_length"),
        ("card", "4970 1012 345A", "bad_character"),
        ("card", "４９７０１０１２３４５６", "bad_character"),
        ("email", "no-at-sign.fr", "bad_format"),
        ("email", "two@@at.fr", "bad_format"),
        ("email", "a@b@c.fr", "bad_format"),
        ("email", "a@localhost", "bad_format"),
        ("email", "a@example..fr", "bad_format"),
        ("email", "@example.fr", "bad_format"),
        ("email", "jean dupont@example.fr", "bad_character"),
        ("email", "a" * 250 + "@b.fr", "bad_length"),
        ("phone", "call me maybe", "bad_format"),
        ("phone", "+33 1", "bad_format"),
        ("person", "Dupont|Jean|1970-02-30|75001", "bad_date"),
        ("person", "Dupont|Jean|31/01/1970|75001", "bad_date"),
        ("person", "Dupont|Jean|1870-01-01|75001", "bad_date"),
        ("person", "Dupont|Jean|1970-01-31", "bad_format"),
        ("person", "Dup0nt|Jean|1970-01-31|75001", "bad_character"),
        ("person", "Dupont| |1970-01-31|75001", "empty"),
        ("person", "Dupont|Jean|1970-01-31|75-001", "bad_format"),
        ("card", "1" * 2000, "too_long"),
        ("fingerprint", "x", "unknown_kind"),
    ],
)
def test_invalid_identifiers_have_stable_codes_and_never_echo(
    kind: str, raw: str, code: str
) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(kind, raw)
    assert code == caught.value.code
    if raw.strip() and kind != "fingerprint":
        assert raw.strip() not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_luhn_check_is_applied_only_when_the_domain_turns_it_on() -> None:
    valid = "79927398713"  # the classic Luhn example
    invalid = "79927398710"
    assert valid == normalise("card", valid, LUHN)
    assert invalid == normalise("card", invalid)
    with pytest.raises(InvalidIdentifier) as caught:
        normalise("card", invalid, LUHN)
    assert caught.value.code == "bad_checksum"


@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_accepts_exactly_one_check_digit(digits: str) -> None:
    assert sum(luhn_valid(digits + d) for d in "0123456789") == 1


@given(kind=st.sampled_from(sorted(KINDS)), raw=st.text(max_size=80))
def test_normalisers_are_idempotent(kind: str, raw: str) -> None:
    try:
        once = normalise(kind, raw)
    except InvalidIdentifier:
        return
    assert once == normalise(kind, once)


@given(
    digits=st.text(alphabet="0123456789", min_size=8, max_size=19),
    separators=st.lists(st.sampled_from(["", " ", "-", "  ", " - "]), min_size=20, max_size=20),
)
def test_card_spacing_and_hyphens_do_not_matter(digits: str, separators: list[str]) -> None:
    spaced = "".join(d + s for d, s in zip(digits, separators, strict=False))
    assert normalise("card", digits) == normalise("card", f"  {spaced} ")


@given(
    local=st.from_regex(r"[a-z0-9._%+\-]{1,20}", fullmatch=True),
    domain=st.from_regex(r"[a-z0-9\-]{1,15}\.[a-z]{2,6}", fullmatch=True),
    upper=st.lists(st.booleans(), min_size=50, max_size=50),
)
def test_email_case_and_surrounding_space_do_not_matter(
    local: str, domain: str, upper: list[bool]
) -> None:
    address = f"{local}@{domain}"
    shuffled = "".join(c.upper() if u else c for c, u in zip(address, upper, strict=False))
    shuffled += address[len(upper) :]
    assert normalise("email", address) == normalise("email", f" {shuffled}\t")


@given(raw=st.text(max_size=60), data=st.data())
def test_no_error_message_contains_the_value(raw: str, data: st.DataObject) -> None:
    # A marker that no message template contains, placed anywhere in the value: if any part of
    # the value around it were echoed, the marker would be too.
    position = data.draw(st.integers(min_value=0, max_value=len(raw)))
    value = raw[:position] + "§µ" + raw[position:]
    for kind in KINDS:
        try:
            normalise(kind, value)
        except InvalidIdentifier as error:
            assert "§µ" not in error.message
            assert "§µ".upper() not in error.message


def _email_model(value: str) -> str:
    """The e-mail rules written out with the general Unicode checks only (no ASCII shortcut):
    the normalised text, or the code of the first rule it breaks."""
    if not value.strip():
        return "empty"
    text = value.strip()
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())
        if folded == text:
            break
        text = folded
    else:
        return "bad_character"
    text = text.strip()
    if any(c.isspace() or unicodedata.category(c)[0] in "CZ" for c in text):
        return "bad_character"
    if len(text) > 254:
        return "bad_length"
    local, _, domain = text.partition("@")
    labels = domain.split(".")
    well_formed = "@" in text and "@" not in domain and local and len(labels) > 1
    return text if well_formed and "" not in labels else "bad_format"


ASCII_PIECES = st.text(alphabet=st.characters(max_codepoint=127), max_size=12)


@given(ASCII_PIECES, st.sampled_from(["@", "", "@@"]), ASCII_PIECES, st.sampled_from([".fr", ""]))
def test_the_ascii_shortcuts_agree_with_the_general_email_checks(
    local: str, at: str, domain: str, tld: str
) -> None:
    """ASCII e-mails take shortcuts past the Unicode checks (one lower(), no per-character
    loop); they must give what the general rules give."""
    value = local + at + domain + tld
    try:
        got = normalise("email", value)
    except InvalidIdentifier as error:
        got = error.code
    assert got == _email_model(value)
