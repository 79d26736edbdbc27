"""Identifier kinds and their strict normalisers (pure functions, no I/O).

A normaliser turns what a partner sends into one canonical string, or raises
:class:`~errors.InvalidIdentifier` with a stable code. Input that does not normalise is
never hashed "as is", and no error message repeats the value.

- ``card``: ASCII digits once spaces and hyphens are removed; 8 to 19 digits; a Luhn check when
  the domain turns it on. ``" 4970 1012-3456 "`` → ``497010123456``.
- ``email``: trimmed, Unicode NFKC, lower-cased (to a fixed point); exactly one ``@`` after a
  non-empty local part; a dotted domain with non-empty labels; no spaces or control characters;
  at most 254 characters. ``" Jean.Dupont@Example.FR"`` → ``jean.dupont@example.fr``.
- ``phone``: parsed by ``phonenumbers`` with a default region (``FR``, configurable) and
  required to be a valid number; E.164. ``"06 12 34 56 78"`` → ``+33612345678``. A value
  already in E.164 form is mostly answered from libphonenumber's metadata without the parse
  (:mod:`tiers._phones`), with the parser's answer.
- ``person``: ``last|first|YYYY-MM-DD|postcode``. Names lose their accents (Œ→OE, Æ→AE), are
  upper-cased with spaces collapsed, and may hold only letters, spaces, hyphens and apostrophes;
  the date must exist and lie in 1900-2100; the postcode is 3 to 10 letters or digits, spaces
  removed. ``"Dupont|Jean|1970-01-31|75 001"`` → ``DUPONT|JEAN|1970-01-31|75001``.

Codes: ``empty``, ``too_long``, ``bad_character``, ``bad_length``, ``bad_checksum``,
``bad_format``, ``bad_date``, ``unknown_kind``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

import phonenumbers

from errors import InvalidIdentifier
from tiers._phones import e164_shortcut

__all__ = [
    "KINDS",
    "IdentifierKind",
    "NormalisationOptions",
    "get_kind",
    "luhn_valid",
    "normalise",
]

MAX_INPUT_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class NormalisationOptions:
    """Per-domain and per-deployment switches of the normalisers."""

    card_luhn: bool = False
    phone_region: str = "FR"


@dataclass(frozen=True, slots=True)
class IdentifierKind:
    name: str
    description: str
    normaliser: Callable[[str, NormalisationOptions], str]


def _fail(code: str, message: str) -> InvalidIdentifier:
    return InvalidIdentifier(message, code=code)


def _precheck(value: str, kind: str) -> str:
    if len(value) > MAX_INPUT_LENGTH:
        raise _fail("too_long", f"{kind}: longer than {MAX_INPUT_LENGTH} characters")
    stripped = value.strip()
    if not stripped:
        raise _fail("empty", f"{kind}: empty value")
    return stripped


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of an ASCII digit string."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if position % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_DIGITS = re.compile(r"[0-9]+")


def _normalise_card(value: str, options: NormalisationOptions) -> str:
    digits = _precheck(value, "card").replace(" ", "").replace("-", "")
    if not _CARD_DIGITS.fullmatch(digits):
        raise _fail("bad_character", "card: only digits, spaces and hyphens are allowed")
    if not 8 <= len(digits) <= 19:
        raise _fail("bad_length", "card: must have 8 to 19 digits")
    if options.card_luhn and not luhn_valid(digits):
        raise _fail("bad_checksum", "card: Luhn check failed")
    return digits


_EMAIL_MAX = 254


def _casefold_fixed_point(text: str) -> str:
    # NFKC and lower() do not commute for a few code points; iterate to a fixed point so that
    # normalising twice gives the same string. ASCII is its own NFKC form: one lower() is it.
    if text.isascii():
        return text.lower()
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())
        if folded == text:
            return folded
        text = folded
    raise _fail("bad_character", "email: characters without a stable lower-case form")


def _has_space_or_control(text: str) -> bool:
    if text.isascii():  # the same test, without a Python loop: printable ASCII but the space
        return " " in text or not text.isprintable()
    return any(c.isspace() or unicodedata.category(c)[0] in "CZ" for c in text)


def _normalise_email(value: str, options: NormalisationOptions) -> str:
    text = _casefold_fixed_point(_precheck(value, "email"))
    text = text.strip()
    if _has_space_or_control(text):
        raise _fail("bad_character", "email: spaces or control characters inside")
    if len(text) > _EMAIL_MAX:
        raise _fail("bad_length", f"email: longer than {_EMAIL_MAX} characters")
    local, at, domain = text.partition("@")
    if not at or "@" in domain or not local:
        raise _fail("bad_format", "email: needs exactly one @ after a non-empty local part")
    labels = domain.split(".")
    if len(labels) < 2 or "" in labels:
        raise _fail("bad_format", "email: the domain must be dotted with non-empty labels")
    return text


def _normalise_phone(value: str, options: NormalisationOptions) -> str:
    text = _precheck(value, "phone")
    shortcut = e164_shortcut(text)  # the parser's own answer, when it is certain (tiers._phones)
    if shortcut is not None:
        return shortcut
    try:
        number = phonenumbers.parse(text, options.phone_region)
    except phonenumbers.NumberParseException:
        raise _fail("bad_format", "phone: not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise _fail("bad_format", "phone: not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_LIGATURES = str.maketrans({"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "’": "'", "‘": "'"})
_NAME = re.compile(r"[A-Z]+(?:[ '\-][A-Z]+)*")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_POSTCODE = re.compile(r"[A-Z0-9]{3,10}")


def _normalise_name(text: str, part: str) -> str:
    text = text.translate(_LIGATURES)
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    bare = " ".join(bare.split())
    bare = re.sub(r"\s*([\-'])\s*", r"\1", bare)
    if not bare:
        raise _fail("empty", f"person: empty {part}")
    if not _NAME.fullmatch(bare):
        raise _fail(
            "bad_character",
            f"person: {part} has characters other than letters, spaces, hyphens and apostrophes",
        )
    return bare


def _normalise_person(value: str, options: NormalisationOptions) -> str:
    fields = _precheck(value, "person").split("|")
    if len(fields) != 4:
        raise _fail("bad_format", "person: expected last|first|YYYY-MM-DD|postcode")
    last = _normalise_name(fields[0], "last name")
    first = _normalise_name(fields[1], "first name")
    birth = fields[2].strip()
    if not _ISO_DATE.fullmatch(birth):
        raise _fail("bad_date", "person: birth date must be YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(birth)
    except ValueError:
        raise _fail("bad_date", "person: birth date does not exist") from None
    if not 1900 <= parsed.year <= 2100:
        raise _fail("bad_date", "person: birth year outside 1900-2100")
    postcode = "".join(fields[3].split()).upper()
    if not postcode:
        raise _fail("empty", "person: empty postcode")
    if not _POSTCODE.fullmatch(postcode):
        raise _fail("bad_format", "person: postcode must be 3 to 10 letters or digits")
    return f"{last}|{first}|{birth}|{postcode}"


KINDS: Mapping[str, IdentifierKind] = MappingProxyType(
    {
        "card": IdentifierKind("card", "loyalty card number", _normalise_card),
        "email": IdentifierKind("email", "e-mail address", _normalise_email),
        "phone": IdentifierKind("phone", "telephone number (E.164)", _normalise_phone),
        "person": IdentifierKind("person", "last|first|YYYY-MM-DD|postcode", _normalise_person),
    }
)


def get_kind(name: str) -> IdentifierKind:
    """The kind called ``name``; raises :class:`InvalidIdentifier` (``unknown_kind``)."""
    kind = KINDS.get(name)
    if kind is None:
        raise _fail("unknown_kind", f"unknown identifier kind (kind); known: {', '.join(KINDS)}")
    return kind


def normalise(kind: str, value: str, options: NormalisationOptions | None = None) -> str:
    """The canonical form of ``value`` as a ``kind``; raises :class:`InvalidIdentifier`."""
    return get_kind(kind).normaliser(value, options or NormalisationOptions())
