"""How commands print what they list: a table on a terminal, whole tab-separated lines in a
pipe, or JSON on request (``--format table|tsv|json``, ``--json`` for short).

A value is never cut: a table on a terminal folds long cells instead, tab-separated lines and
JSON hold each value whole. Control characters are escaped in tables and lines, so that log
data cannot drive a terminal; JSON is written in ASCII, every other character escaped
(``\\u00e9``), so that no C1 control or bidirectional override reaches the terminal either.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "AsJson",
    "Format",
    "OutputFormat",
    "err_console",
    "out_console",
    "print_record",
    "print_rows",
    "printable",
    "wants_json",
]

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def printable(text: str) -> str:
    """``text`` with control characters escaped, so that log data cannot drive the terminal."""
    return "".join(
        c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


class OutputFormat(StrEnum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


Format = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        case_sensitive=False,
        show_default=False,
        help="table, tsv or json [default: table on a terminal, tsv otherwise]",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="the same as --format json")]


def wants_json(output: OutputFormat | None, as_json: bool) -> bool:
    return as_json or output is OutputFormat.JSON


def _chosen(output: OutputFormat | None, as_json: bool) -> OutputFormat:
    if as_json:
        return OutputFormat.JSON
    if output is not None:
        return output
    return OutputFormat.TABLE if out_console.is_terminal else OutputFormat.TSV


def print_rows(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    output: OutputFormat | None = None,
    *,
    as_json: bool = False,
) -> None:
    """Rows under ``headers``: JSON is a list of objects keyed by the headers."""
    chosen = _chosen(output, as_json)
    if chosen is OutputFormat.JSON:
        objects = [dict(zip(headers, row, strict=True)) for row in rows]
        sys.stdout.write(json.dumps(objects, indent=2) + "\n")
    elif chosen is OutputFormat.TABLE:
        table = Table(*headers)
        for row in rows:
            table.add_row(*(printable(cell) for cell in row))
        out_console.print(table)
    else:
        sys.stdout.write("\t".join(headers) + "\n")
        for row in rows:
            cells = (printable(cell).replace("\t", " ") for cell in row)
            sys.stdout.write("\t".join(cells) + "\n")


def print_record(
    fields: Mapping[str, object], output: OutputFormat | None = None, *, as_json: bool = False
) -> None:
    """One record: ``name: value`` lines (a table's and tsv's form), or a JSON object whose
    values keep their types (numbers, lists, objects)."""
    if _chosen(output, as_json) is OutputFormat.JSON:
        sys.stdout.write(json.dumps(fields, indent=2) + "\n")
        return
    for name, value in fields.items():
        sys.stdout.write(f"{name}: {printable(_text(value))}\n")


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "none"
    return str(value)
