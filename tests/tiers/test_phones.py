"""The E.164 shortcut gives the parser's answer, or none: never another one."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from errors import InvalidIdentifier
from tiers._phones import e164_shortcut
from tiers.identifiers import NormalisationOptions, normalise


def parser_answer(text: str, region: str = "FR") -> str | None:
    """What libphonenumber makes of ``text``: its E.164 form when valid, else None."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def example_numbers() -> list[str]:
    """Every region's example number of every type, and the non-geographic ones, in E.164."""
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in range(12):  # PhoneNumberType values, FIXED_LINE .. VOICEMAIL
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


EXAMPLES = example_numbers()


def test_every_example_number_gets_the_parsers_answer() -> None:
    answered = 0
    for text in EXAMPLES:
        shortcut = e164_shortcut(text)
        if shortcut is not None:
            assert shortcut == parser_answer(text), text
            answered += 1
    # The shortcut is worth having: it answers for most of the world's example numbers.
    assert len(EXAMPLES) > 1000
    assert answered > len(EXAMPLES) // 2


@pytest.mark.parametrize(
    "text", ["+33612345678", "+33781234567", "+33123456789", "+4915112345678", "+34612345678"]
)
def test_common_numbers_take_the_shortcut(text: str) -> None:
    assert e164_shortcut(text) == text == parser_answer(text)


@pytest.mark.parametrize(
    "text",
    [
        "+12025550123",  # +1 serves many regions: the parser finds which
        "+447911123456",  # +44 too (GB, GG, IM, JE)
        "+390612345678",  # Italian leading zero
        "+33012345678",  # national prefix after the country code
        "+80012345678",  # non-geographic
        "+33 612345678",  # not bare E.164
        "+３３６１２３４５６７８",  # not ASCII digits
        "+3361234567",  # too short for France: invalid, and the parser says so
        "+49494034393482",  # fits a German type's pattern, not the general one: invalid
        "33612345678",  # no plus
    ],
)
def test_the_parser_decides_everything_else(text: str) -> None:
    assert e164_shortcut(text) is None


_CODES = sorted(COUNTRY_CODE_TO_REGION_CODE)


@st.composite
def e164_like(draw: st.DrawFn) -> str:
    """``+``, a known country code, and digits: random, or an example number's with its tail
    redrawn (so that many are valid)."""
    if draw(st.booleans()):
        example = draw(st.sampled_from(EXAMPLES))
        keep = draw(st.integers(min_value=2, max_value=len(example)))
        tail = draw(st.text("0123456789", min_size=0, max_size=len(example) - keep + 2))
        return example[:keep] + tail
    code = draw(st.sampled_from(_CODES))
    return f"+{code}" + draw(st.text("0123456789", min_size=0, max_size=14))


@settings(max_examples=3000, deadline=None)
@given(e164_like())
def test_the_shortcut_never_contradicts_the_parser(text: str) -> None:
    shortcut = e164_shortcut(text)
    if shortcut is not None:
        assert shortcut == text == parser_answer(text)


@settings(max_examples=1000, deadline=None)
@given(e164_like(), st.sampled_from(["FR", "US", "DE", "GB"]))
def test_the_phone_normaliser_is_the_parser(text: str, region: str) -> None:
    """The whole normaliser, shortcut or not: the parser's answer, whatever the default
    region (an E.164 number carries its own country)."""
    expected = parser_answer(text, region)
    options = NormalisationOptions(phone_region=region)
    if expected is None:
        with pytest.raises(InvalidIdentifier):
            normalise("phone", text, options)
    else:
        assert normalise("phone", text, options) == expected
