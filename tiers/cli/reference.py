"""The command line's reference, generated from the commands themselves:
``python -m tiers.cli.reference > docs/cli.md`` (a test keeps the file current)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import typer

from tiers.cli import app

__all__ = ["markdown"]


# Typer's commands and parameters are click's (vendored by Typer): read by their attributes.
def _commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    group = getattr(command, "commands", None)
    if group is None:
        yield path, command
        return
    for name in sorted(group):
        yield from _commands(group[name], f"{path} {name}")


def _parameter(parameter: Any) -> str:
    if parameter.param_type_name == "argument":
        name = f"`{parameter.name.upper()}`"
        shown = "argument" + ("" if parameter.required else ", optional")
        return f"| {name} | {shown} | |"
    names = ", ".join(f"`{opt}`" for opt in [*parameter.opts, *parameter.secondary_opts])
    notes = []
    if parameter.required:
        notes.append("required")
    if parameter.envvar:
        notes.append(f"env `{parameter.envvar}`")
    text = " ".join((parameter.help or "").split()).replace("|", "\\|")
    return f"| {names} | {', '.join(notes)} | {text} |"


def markdown() -> str:
    """Every command, its help and its parameters, as Markdown."""
    root = typer.main.get_command(app)
    lines = [
        "# The command line",
        "",
        "Generated from the commands by `python -m tiers.cli.reference > docs/cli.md`; a test",
        "keeps it current. Every command prints errors as `error: <message> [<code>]` on stderr",
        "(the codes are in [errors.md](errors.md)) and exits 1; commands that handle records",
        "exit 2 when some were rejected. A tour of the commands is in",
        "[operator.md](operator.md).",
    ]
    for path, command in _commands(root, "tiers"):
        lines += ["", f"## `{path}`", ""]
        help_text = " ".join((command.help or "").split("\b")[0].split())
        if help_text:
            lines.append(help_text)
        parameters = [p for p in command.params if p.name != "help"]
        if parameters:
            lines += ["", "| parameter | | |", "|---|---|---|"]
            lines += [_parameter(p) for p in parameters]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
