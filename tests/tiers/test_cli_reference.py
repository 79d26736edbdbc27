"""The command line's reference (docs/cli.md) is generated from the commands and current."""

from __future__ import annotations

from pathlib import Path

import typer

from tiers.cli import app
from tiers.cli.reference import markdown

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_reference_is_current() -> None:
    assert markdown() == DOCUMENT.read_text(encoding="utf-8"), (
        "run: python -m tiers.cli.reference > docs/cli.md"
    )


def test_the_reference_names_every_command_and_option() -> None:
    text = markdown()
    root = typer.main.get_command(app)
    for group_name, group in root.commands.items():  # type: ignore[attr-defined]
        for name, command in getattr(group, "commands", {group_name: group}).items():
            path = f"tiers {group_name}" + ("" if command is group else f" {name}")
            assert f"## `{path}`" in text
            for parameter in command.params:
                for option in getattr(parameter, "opts", []):
                    if option.startswith("-"):
                        assert f"`{option}`" in text.split(f"## `{path}`", 1)[1]
