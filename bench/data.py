"""The benchmark's synthetic customer file: seeded, so every run and every peer reads the same
bytes. Columns: card, email, phone, and three payload columns (a date, an amount, a store)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

HEADER = "card,email,phone,date,amount,store\n"
IDENTIFIER_COLUMNS = ("card", "email", "phone")
_FIRST = ("anne", "marc", "fatima", "jean", "chloe", "karim", "lea", "paul", "ines", "hugo")
_MOBILE = "0124568"  # +336 numbers in these ranges are all valid (libphonenumber)
_DOMAINS = ("example.fr", "mail.example.com", "exemple.org", "poste.example.net")


def luhn_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = int(char)
        if position % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def write_customer_file(path: Path, rows: int, seed: int = 2026, first: int = 0) -> Path:
    """``rows`` customers (distinct cards), numbered from ``first`` (files of other customers)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets

    def lines() -> Iterator[str]:
        for n in range(first, first + rows):
            card = f"4970{n:011d}"
            card += luhn_digit(card)
            name = _FIRST[rng.randrange(len(_FIRST))]
            # One row in a thousand has a malformed email: the file has rejects, as real ones do.
            email = f"{name}.{n}" + ("" if n % 1000 == 999 else f"@{_DOMAINS[n % 4]}")
            phone = f"+336{_MOBILE[rng.randrange(len(_MOBILE))]}{rng.randrange(10**7):07d}"
            day = 1 + n % 28
            yield (
                f"{card},{email},{phone},2026-11-{day:02d},{rng.randrange(1, 50000) / 100:.2f},"
                f"S-{n % 500:03d}\n"
            )

    return write_lines(path, HEADER, lines())


def write_lines(path: Path, header: str, lines: Iterable[str]) -> Path:
    """``header`` then ``lines``, written in pieces of 20,000 lines (memory stays small)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header)
        piece: list[str] = []
        for line in lines:
            piece.append(line)
            if len(piece) == 20_000:
                handle.write("".join(piece))
                piece.clear()
        handle.write("".join(piece))
    return path


def identifiers(path: Path) -> list[tuple[str, str, str]]:
    """The (card, email, phone) of every row, in memory, for the ceiling loops."""
    with open(path, encoding="utf-8") as handle:
        next(handle)
        return [tuple(line.split(",", 3)[:3]) for line in handle]  # type: ignore[misc]
