"""The seams the import contracts do not see: each storage module goes by one name in the
product, so a reader meets ``links_repo`` for the storage of links wherever it is used."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_each_storage_module_goes_by_one_name() -> None:
    names: dict[str, set[str]] = defaultdict(set)
    for package in ("api", "tiers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "tiers.storage":
                    for alias in node.names:
                        if (
                            alias.name.islower()
                            and (ROOT / "tiers/storage" / f"{alias.name}.py").exists()
                        ):
                            names[alias.name].add(alias.asname or alias.name)
    assert len(names) > 5
    assert {module: {next(iter(n))} for module, n in names.items()} == dict(names)
