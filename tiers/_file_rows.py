"""What each row of a customer file becomes, for both readers of a file (:mod:`tiers.files`
reads it record by record, :mod:`tiers._fastpath` block by block): the plan of its columns, a
row's problems and tokens, its output row, and what it registers.

Both readers call these functions, so their outputs cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from errors import InvalidFile, InvalidIdentifier, InvalidRequest, NotFound
from tiers._csvio import delimiter_hint, undecodable
from tiers.identifiers import IdentifierKind, get_kind
from tiers.tokenisation import Tokeniser

__all__ = [
    "ColumnSpec",
    "Plan",
    "Token",
    "column_name",
    "neutralise_formula",
    "output_row",
    "plan_of",
    "registrations",
    "row_problems",
]

# A token of one identifier: its base pseudonym, the MAC for the domain's index, its text.
Token = tuple[bytes, bytes, str]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_NUMBER = re.compile(r"[+-]?[0-9]+([.,][0-9]+)?")


def neutralise_formula(cell: str) -> str:
    """A kept cell that a spreadsheet would run as a formula gets a leading ``'`` (OWASP CSV
    injection). Plain signed numbers such as ``-12.50`` are left as they are."""
    if cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """``--column NAME=KIND``: the column ``name`` holds identifiers of ``kind``."""

    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Which input positions go out, and which of them are identifiers of which kind."""

    header: list[str]
    output_positions: list[int]
    identifier_positions: list[tuple[int, IdentifierKind]]
    keep_positions: list[int]
    # Input position of each identifier column -> its index among a row's tokens.
    identifier_slots: dict[int, int]


def plan_of(header: list[str], columns: Sequence[ColumnSpec], keep: Sequence[str]) -> Plan:
    if len(set(header)) != len(header):
        raise InvalidFile("the header names a column twice", code="duplicate_column")
    position = {name: i for i, name in enumerate(header)}
    identifier_names = [spec.name for spec in columns]
    if not columns:
        raise InvalidRequest(
            "name at least one identifier column (--column NAME=KIND)", code="no_columns"
        )
    if len(set(identifier_names)) != len(identifier_names):
        raise InvalidRequest("an identifier column is named twice", code="column_named_twice")
    overlap = set(identifier_names) & set(keep)
    if overlap:
        raise InvalidRequest(
            "a column is both an identifier (column) and kept as is (keep)",
            code="column_named_twice",
        )
    for option, names in (("column", identifier_names), ("keep", keep)):
        for n, name in enumerate(names, start=1):
            if name not in position:
                raise NotFound(
                    f"{option} number {n} names no column of the file's header"
                    + delimiter_hint(header),
                    code="unknown_column",
                )
    wanted = set(identifier_names) | set(keep)
    kinds = {spec.name: get_kind(spec.kind) for spec in columns}
    return Plan(
        header=[name for name in header if name in wanted],
        output_positions=[i for i, name in enumerate(header) if name in wanted],
        identifier_positions=[(position[spec.name], kinds[spec.name]) for spec in columns],
        keep_positions=[position[name] for name in keep],
        identifier_slots={position[spec.name]: i for i, spec in enumerate(columns)},
    )


def row_problems(
    row: list[str], plan: Plan, width: int, tokeniser: Tokeniser
) -> tuple[list[tuple[str, str]], list[tuple[bytes, bytes, str]]]:
    """The ``(column, code)`` problems of one row, and its tokens when it has none."""
    if len(row) != width:
        return [("", "field_count")], []
    problems: list[tuple[str, str]] = []
    tokens: list[tuple[bytes, bytes, str]] = []
    for position, kind in plan.identifier_positions:
        value = row[position]
        if undecodable(value):
            problems.append((column_name(plan, position), "bad_encoding"))
            continue
        try:
            tokens.append(tokeniser.tokenise(kind, value))
        except InvalidIdentifier as error:
            problems.append((column_name(plan, position), error.code))
    for position in plan.keep_positions:
        value = row[position]
        if undecodable(value):
            problems.append((column_name(plan, position), "bad_encoding"))
        elif "\x00" in value:
            problems.append((column_name(plan, position), "bad_character"))
    return problems, tokens


def column_name(plan: Plan, position: int) -> str:
    return plan.header[plan.output_positions.index(position)]


def output_row(plan: Plan, row: list[str], tokens: list[tuple[bytes, bytes, str]]) -> list[str]:
    slots = plan.identifier_slots
    return [
        neutralise_formula(row[pos]) if (slot := slots.get(pos)) is None else tokens[slot][2]
        for pos in plan.output_positions
    ]


def registrations(
    plan: Plan, tokens: list[tuple[bytes, bytes, str]]
) -> Iterator[tuple[bytes, bytes, str]]:
    for (base, mac, _), (_, kind) in zip(tokens, plan.identifier_positions, strict=True):
        yield base, mac, kind.name
