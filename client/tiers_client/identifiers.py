"""The service's identifier normalisers, on the partner's side, for blind mode: a partner that
blinds its identifiers must give each one the canonical form the service would give it, or the
same customer would get another pseudonym at another partner.

This is a second implementation of the published rules, written from them and kept to the
service's by tests: the known-answer vectors both must give, and properties comparing the two on
random input of every kind (``tests/client/test_blind_identifiers.py``). The rules:

- ``card``: ASCII digits once spaces and hyphens are removed; 8 to 19 of them; the Luhn check
  when the domain asks for it.
- ``email``: trimmed, NFKC and lower-cased until stable; one ``@`` after a non-empty local
  part; a dotted domain of non-empty labels; no space or control character; 254 characters at
  most.
- ``phone``: a valid number for ``phonenumbers`` (read in the domain's region when written
  without a country code), in E.164.
- ``person``: ``last|first|YYYY-MM-DD|postcode``; names without accents (Œ → OE, Æ → AE),
  upper case, spaces collapsed, only letters, spaces, hyphens and apostrophes; a real date in
  1900–2100; a postcode of 3 to 10 letters or digits, spaces removed.

A value that does not normalise raises :class:`IdentifierRefused` with the service's code for it
(``empty``, ``too_long``, ``bad_character``, ``bad_length``, ``bad_checksum``, ``bad_format``,
``bad_date``, ``unknown_kind``), and a message that never repeats the value. Phone numbers need
``phonenumbers``: ``pip install 'tiers-client[blind]'``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from tiers_client._extras import blind_extra

__all__ = ["KINDS", "IdentifierRefused", "normalise"]

KINDS = ("card", "email", "phone", "person")
MAX_LENGTH = 1024
_EMAIL_MAX = 254


class IdentifierRefused(ValueError):
    """A value that does not normalise as its kind: ``code`` says why (never the value)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code


def normalise(kind: str, value: str, *, card_luhn: bool = False, phone_region: str = "FR") -> str:
    """The canonical form of ``value`` as an identifier of ``kind``, as the service gives it
    (``card_luhn`` and ``phone_region`` as the domain's keys publish them)."""
    if kind not in KINDS:
        raise IdentifierRefused(
            f"unknown identifier kind; known: {', '.join(KINDS)}", "unknown_kind"
        )
    if len(value) > MAX_LENGTH:
        raise IdentifierRefused(f"{kind}: longer than {MAX_LENGTH} characters", "too_long")
    text = value.strip()
    if not text:
        raise IdentifierRefused(f"{kind}: empty value", "empty")
    if kind == "card":
        return _card(text, card_luhn)
    if kind == "email":
        return _email(text)
    if kind == "phone":
        return _phone(text, phone_region)
    return _person(text)


def _luhn(digits: str) -> bool:
    doubled = [int(d) * (2 if i % 2 else 1) for i, d in enumerate(reversed(digits))]
    return sum(d - 9 if d > 9 else d for d in doubled) % 10 == 0


def _card(text: str, luhn: bool) -> str:
    digits = text.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit():
        raise IdentifierRefused("card: only digits, spaces and hyphens", "bad_character")
    if not 8 <= len(digits) <= 19:
        raise IdentifierRefused("card: 8 to 19 digits", "bad_length")
    if luhn and not _luhn(digits):
        raise IdentifierRefused("card: the Luhn check fails", "bad_checksum")
    return digits


def _lower_stable(text: str) -> str:
    """NFKC then lower case, repeated until nothing changes (four rounds at most)."""
    if text.isascii():
        return text.lower()
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())
        if folded == text:
            return folded
        text = folded
    raise IdentifierRefused("email: characters without a stable lower case", "bad_character")


def _email(text: str) -> str:
    text = _lower_stable(text).strip()
    spaced = any(c.isspace() or unicodedata.category(c)[0] in "CZ" for c in text)
    if spaced:
        raise IdentifierRefused("email: a space or control character inside", "bad_character")
    if len(text) > _EMAIL_MAX:
        raise IdentifierRefused(f"email: longer than {_EMAIL_MAX} characters", "bad_length")
    local, _, domain = text.partition("@")
    if text.count("@") != 1 or not local:
        raise IdentifierRefused("email: one @ after a non-empty local part", "bad_format")
    if "." not in domain or "" in domain.split("."):
        raise IdentifierRefused("email: a dotted domain of non-empty labels", "bad_format")
    return text


def _phone(text: str, region: str) -> str:
    phonenumbers = blind_extra().phonenumbers
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise IdentifierRefused("phone: not a phone number", "bad_format") from None
    if not phonenumbers.is_valid_number(number):
        raise IdentifierRefused("phone: not a valid number", "bad_format")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


_LIGATURES = {"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "’": "'", "‘": "'"}
_NAME = re.compile(r"[A-Z]+(?:[ '\-][A-Z]+)*")
_POSTCODE = re.compile(r"[A-Z0-9]{3,10}")


def _name(text: str, part: str) -> str:
    for ligature, letters in _LIGATURES.items():
        text = text.replace(ligature, letters)
    bare = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).upper()
    bare = re.sub(r"\s*([\-'])\s*", r"\1", " ".join(bare.split()))
    if not bare:
        raise IdentifierRefused(f"person: empty {part}", "empty")
    if not _NAME.fullmatch(bare):
        raise IdentifierRefused(
            f"person: {part} holds more than letters, spaces, hyphens and apostrophes",
            "bad_character",
        )
    return bare


def _birth(text: str) -> str:
    text = text.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise IdentifierRefused("person: birth date must be YYYY-MM-DD", "bad_date")
    if not all(text[i].isascii() and text[i].isdigit() for i in (0, 1, 2, 3, 5, 6, 8, 9)):
        raise IdentifierRefused("person: birth date must be YYYY-MM-DD", "bad_date")
    try:
        born = date.fromisoformat(text)
    except ValueError:
        raise IdentifierRefused("person: the birth date does not exist", "bad_date") from None
    if not 1900 <= born.year <= 2100:
        raise IdentifierRefused("person: birth year outside 1900-2100", "bad_date")
    return text


def _person(text: str) -> str:
    fields = text.split("|")
    if len(fields) != 4:
        raise IdentifierRefused("person: expected last|first|YYYY-MM-DD|postcode", "bad_format")
    last, first = _name(fields[0], "last name"), _name(fields[1], "first name")
    birth = _birth(fields[2])
    postcode = "".join(fields[3].split()).upper()
    if not postcode:
        raise IdentifierRefused("person: empty postcode", "empty")
    if not _POSTCODE.fullmatch(postcode):
        raise IdentifierRefused("person: postcode of 3 to 10 letters or digits", "bad_format")
    return f"{last}|{first}|{birth}|{postcode}"
