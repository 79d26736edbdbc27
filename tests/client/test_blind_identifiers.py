"""The client's normalisers (blind mode's partner side) give what the service's give: the same
canonical form, or a refusal with the same code, for the published vectors and for random input
of every kind. Two implementations of one rule, held together here: a drift would give a
customer another pseudonym in blind mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tiers_client._blind_file import _delimiter, _kept
from tiers_client.identifiers import IdentifierRefused
from tiers_client.identifiers import normalise as client_normalise

from errors import InvalidIdentifier
from tiers._csvio import detect_delimiter
from tiers._file_rows import neutralise_formula
from tiers.identifiers import NormalisationOptions
from tiers.identifiers import normalise as service_normalise

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "known_answers.json").read_text())


def service(kind: str, value: str, luhn: bool = False, region: str = "FR") -> str:
    try:
        return service_normalise(kind, value, NormalisationOptions(luhn, region))
    except InvalidIdentifier as refused:
        return f"refused:{refused.code}"


def client(kind: str, value: str, luhn: bool = False, region: str = "FR") -> str:
    try:
        return client_normalise(kind, value, card_luhn=luhn, phone_region=region)
    except IdentifierRefused as refused:
        return f"refused:{refused.code}"


@pytest.mark.parametrize("vector", VECTORS["identifiers"], ids=lambda v: v["kind"])
def test_the_published_spellings_give_the_published_form(vector: dict[str, object]) -> None:
    spellings = vector["spellings"]
    assert isinstance(spellings, list)
    for spelling in spellings:
        assert vector["normalised"] == client(str(vector["kind"]), spelling)


# Characters each normaliser cares about, and a few it must refuse or fold.
CARD = st.text(st.sampled_from("0123456789 -x٣"), max_size=24)
_EMAIL_PART = st.text(
    st.sampled_from("abcXYZé.@-_+ \tＡﬁİ\u200b\x00") | st.characters(codec="utf-8"), max_size=12
)
EMAIL = st.tuples(_EMAIL_PART, st.sampled_from(["@", "@@", "", "＠"]), _EMAIL_PART).map(
    "".join
) | st.text(max_size=30)
PHONE = st.text(st.sampled_from("+0123456789 ()-.x"), max_size=20)
NAME = st.text(st.sampled_from("abcXYZéèÉŒæ' -’\t1"), max_size=12)
DATE = st.sampled_from(["1970-01-31", "2000-02-29", "1900-02-29", "1899-12-31", "2100-12-31",
                        "1970-1-31", "١٩٧٠-01-31", " 1980-05-05 ", "2023-13-01"])  # fmt: skip
POSTCODE = st.text(st.sampled_from("75abZ 0-"), max_size=12)
PERSON = st.tuples(NAME, NAME, DATE, POSTCODE).map("|".join) | st.text(max_size=30)


@settings(max_examples=300, deadline=None)
@given(value=CARD, luhn=st.booleans())
@example(value="4970 1012 3456 7890", luhn=True)
@example(value="- -", luhn=False)
def test_cards(value: str, luhn: bool) -> None:
    assert service("card", value, luhn) == client("card", value, luhn)


@settings(max_examples=300, deadline=None)
@given(value=EMAIL)
@example(value="  Jean.Dupont@Example.FR ")
@example(value="a@b.c" + "x" * 260)
@example(value="x" * 1025)
@example(value="a@b@c.fr")
def test_emails(value: str) -> None:
    assert service("email", value) == client("email", value)


@settings(max_examples=200, deadline=None)
@given(value=PHONE, region=st.sampled_from(["FR", "BE", "GB", "US"]))
@example(value="06 12 34 56 78", region="FR")
@example(value="+33612345678", region="FR")
@example(value="+32470123456", region="FR")
def test_phones(value: str, region: str) -> None:
    assert service("phone", value, region=region) == client("phone", value, region=region)


@settings(max_examples=300, deadline=None)
@given(value=PERSON)
@example(value="Dupont|Jean|1970-01-31|75 001")
@example(value="Œdipe-Roi|Ana ’Marie|2000-02-29|ab 12")
def test_people(value: str) -> None:
    assert service("person", value) == client("person", value)


@given(kind=st.text(max_size=8), value=st.text(max_size=8))
def test_an_unknown_kind_is_refused_alike(kind: str, value: str) -> None:
    assert service(kind, value) == client(kind, value)


# The blind file command's two file rules, held to the service's in the same way: a drift would
# split a partner's file into other columns, or let a formula through, in blind mode only.
_CELLS = st.text(alphabet=st.sampled_from(list('=+-@\t\r0123456789.,;|"ab ')), max_size=12)


@settings(max_examples=300)
@given(line=_CELLS)
@example(line='"a;b",c')
@example(line="a\tb;c\td")
@example(line="a;b\tc|d,e")  # a tie of four: the first candidate wins
@example(line="")
def test_the_client_finds_the_delimiter_the_service_finds(line: str) -> None:
    assert _delimiter(line) == detect_delimiter(line)


@settings(max_examples=300)
@given(cell=_CELLS)
@example(cell="-12.50")
@example(cell="=SUM(A1)")
@example(cell="+33612345678")
def test_the_client_neutralises_the_formulas_the_service_neutralises(cell: str) -> None:
    assert _kept(cell) == neutralise_formula(cell)
