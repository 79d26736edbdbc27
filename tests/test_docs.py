"""The documents stand alone: every relative link of README.md, SECURITY.md and docs/ names a
file of the repository, and none points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_names_a_file_of_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text
    for target in LINK.findall(text):
        if "://" in target:
            continue
        resolved = (document.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), target
        assert resolved.exists(), f"{document.name} links to a missing {target}"


def test_the_readme_is_short_and_names_every_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("\n") < 200
    for guide in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{guide.name}" in readme, guide.name
