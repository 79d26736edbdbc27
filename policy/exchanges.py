"""Exchange schemas: which columns a partner may send to the hub, with a type each (pure).

Data minimisation as data: an exchange type names its identifier column (and kind) and an
allow-list of payload columns. A header naming any other column is refused whole; a value that
does not fit its column's type rejects its row with the code ``bad_<type>``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from policy.schema import PolicyError

__all__ = ["TYPES", "ExchangeSchema", "check_value", "load_exchanges", "row_problems"]


def _date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


TYPES: Mapping[str, Callable[[str], bool]] = MappingProxyType(
    {
        "date": _date,
        "decimal": lambda v: re.fullmatch(r"-?\d{1,12}(\.\d{1,4})?", v) is not None,
        "integer": lambda v: re.fullmatch(r"-?\d{1,12}", v) is not None,
        "store_code": lambda v: re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,15}", v) is not None,
        "category": lambda v: re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", v) is not None,
        "text": lambda v: len(v) <= 200 and all(c.isprintable() for c in v),
    }
)
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class ExchangeSchema:
    name: str
    identifier_column: str
    identifier_kind: str
    columns: Mapping[str, str]


def check_value(kind: str, value: str) -> bool:
    """Whether ``value`` fits the column type ``kind``. An empty value never does."""
    return bool(value) and TYPES[kind](value)


def row_problems(
    row: list[str], header: list[str], identifier: int, schema: ExchangeSchema
) -> list[tuple[str, str]]:
    """``(column, code)`` for each payload value of ``row`` that does not fit its type."""
    if len(row) != len(header):
        return [("", "field_count")]
    return [
        (name, f"bad_{schema.columns[name]}")
        for position, name in enumerate(header)
        if position != identifier and not check_value(schema.columns[name], row[position])
    ]


def load_exchanges(data: bytes) -> dict[str, ExchangeSchema]:
    """Parse and validate ``exchanges.toml``; raises :class:`PolicyError` naming the exchange."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"the exchanges file is not valid TOML: {error}") from None
    if set(raw) != {"exchanges"} or not isinstance(raw["exchanges"], dict):
        raise PolicyError("the exchanges file holds one table, [exchanges.<type>]")
    schemas: dict[str, ExchangeSchema] = {}
    for name, spec in raw["exchanges"].items():
        where = f"exchange {name!r}"
        if not _NAME.fullmatch(name) or not isinstance(spec, dict):
            raise PolicyError(f"{where}: a type name is lower-case letters, digits, - or _")
        unknown = set(spec) - {"identifier", "columns", "allow_free_text"}
        if unknown:
            raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        identifier, columns = spec.get("identifier"), spec.get("columns")
        if not isinstance(identifier, dict) or set(identifier) != {"column", "kind"}:
            raise PolicyError(f"{where}: identifier = {{ column = ..., kind = ... }}")
        if not isinstance(columns, dict):
            raise PolicyError(f"{where}: columns must be a table of name = type")
        free_text = spec.get("allow_free_text", False)
        for column, kind in columns.items():
            if kind not in TYPES:
                raise PolicyError(f"{where}: column {column!r} has unknown type {kind!r}")
            if kind == "text" and free_text is not True:
                raise PolicyError(
                    f"{where}: column {column!r} is free text, which needs allow_free_text = true"
                )
        if identifier["column"] in columns:
            raise PolicyError(f"{where}: the identifier column is also a payload column")
        schemas[name] = ExchangeSchema(
            name,
            str(identifier["column"]),
            str(identifier["kind"]),
            MappingProxyType(dict(columns)),
        )
    return schemas
