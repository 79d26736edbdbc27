"""Error codes named once (errors.codes): every code the source raises is in the table, with
the class that raises it; every code in the table is raised somewhere and documented; the API
answers each with the table's status."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiers_client import errors as client_errors

import errors
from api.errors import status_of
from errors import TiersError
from errors.codes import CODES, ROW_CODES, client_module, markdown
from policy.exchanges import TYPES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "tiers", "keys", "audit", "policy", "errors")
IDENTIFIERS = "tiers/identifiers.py"  # its _fail(code, message) makes InvalidIdentifier


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(encoding="utf-8"))


def _error_classes() -> dict[str, type[TiersError]]:
    """Every TiersError subclass of the product, by name (each module imported)."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" not in info.name:
                importlib.import_module(info.name)
    found: dict[str, type[TiersError]] = {}
    pending: list[type[TiersError]] = [TiersError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending += cls.__subclasses__()
    return found


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def _text(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _class_codes(node: ast.ClassDef) -> Iterator[str]:
    """The ``code = "..."`` of an error class's body."""
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "code" for target in statement.targets
        ):
            code = _text(statement.value)
            if code is not None:
                yield code


def _call_codes(call: ast.Call, constants: dict[str, str]) -> Iterator[str]:
    """The codes of a call's ``code=``: a literal, a module constant, or either branch of
    ``"a" if ... else b``."""
    for keyword in call.keywords:
        if keyword.arg != "code":
            continue
        value = keyword.value
        choices = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
        for choice in choices:
            code = constants.get(choice.id) if isinstance(choice, ast.Name) else _text(choice)
            if code is not None:
                yield code


def _raised(classes: dict[str, type[TiersError]]) -> set[tuple[str, str, str]]:
    """``(code, class name, file)`` of every code in the source: the ``code`` attribute of an
    error class, the ``code=`` of a call to one, the codes the identifier normalisers fail
    with (``_fail("code", ...)``) and those a refusal is logged with (``Refusal(code=...)``)."""
    found: set[tuple[str, str, str]] = set()
    for path, tree in _sources():
        where = str(path.relative_to(ROOT))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in classes:
                found.update((code, node.name, where) for code in _class_codes(node))
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            failed = _text(node.args[0]) if name == "_fail" and where == IDENTIFIERS else None
            if failed is not None:
                found.add((failed, "InvalidIdentifier", where))
            if name in classes or name == "Refusal":
                found.update((code, name, where) for code in _call_codes(node, constants))
    return found


@pytest.fixture(scope="module")
def classes() -> dict[str, type[TiersError]]:
    return _error_classes()


@pytest.fixture(scope="module")
def raised(classes: dict[str, type[TiersError]]) -> set[tuple[str, str, str]]:
    return _raised(classes)


def test_every_code_raised_is_in_the_table_with_its_class(
    raised: set[tuple[str, str, str]], classes: dict[str, type[TiersError]]
) -> None:
    assert len(raised) > 100  # the scan sees the source
    wrong = []
    for code, carrier, where in sorted(raised):
        if carrier == "Refusal":  # logged by the door with a code of its own or an error's
            if code not in CODES:
                wrong.append((code, carrier, where))
            continue
        entry = CODES.get(code)
        if entry is None:
            wrong.append((code, carrier, where))
        elif entry.error is not classes[carrier]:
            wrong.append((code, f"{carrier}, but the table says {entry.error.__name__}", where))
    assert [] == wrong


def test_every_code_in_the_table_is_raised_somewhere(raised: set[tuple[str, str, str]]) -> None:
    assert set() == set(CODES) - {code for code, _, _ in raised}


def test_every_row_code_is_written_somewhere() -> None:
    """Literally, or as an exchange's ``bad_<type>`` for each of its types."""
    text = "".join(path.read_text(encoding="utf-8") for path, _ in _sources())
    typed = {f"bad_{kind}" for kind in TYPES}
    assert [] == [code for code in ROW_CODES if f'"{code}"' not in text and code not in typed]
    assert typed <= set(ROW_CODES) | set(CODES)


def test_the_api_answers_each_code_with_the_table_status() -> None:
    for entry in CODES.values():
        error = entry.error.__new__(entry.error)
        TiersError.__init__(error, entry.meaning, code=entry.code)
        assert entry.status == status_of(error), entry.code
        assert entry.meaning and entry.meaning == entry.meaning.strip()


def test_every_error_class_carries_a_code_of_the_table(
    classes: dict[str, type[TiersError]],
) -> None:
    """(The root, never raised itself, has the code ``error``.)"""
    loose = [name for name, cls in classes.items() if cls.code not in CODES]
    assert ["TiersError"] == loose


def test_the_documented_table_is_current() -> None:
    documented = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert markdown() == documented, "run: python -m errors.codes > docs/errors.md"
    for code in [*CODES, *ROW_CODES]:
        assert f"| `{code}` |" in documented


def test_the_error_tree_is_exported(classes: dict[str, type[TiersError]]) -> None:
    """Every error class of the bottom layer is in its ``__all__``."""
    own = {name for name, cls in classes.items() if cls.__module__ == "errors"}
    assert own <= set(errors.__all__)


def test_the_client_s_exceptions_are_generated_from_the_table() -> None:
    """client/tiers_client/errors.py: one exception per code, in the server's tree, current."""
    generated = (Path(__file__).parent.parent / "client/tiers_client/errors.py").read_text()
    assert client_module() == generated, (
        "run: python -m errors.codes --client > client/tiers_client/errors.py"
    )
    assert set(client_errors.BY_CODE) == set(CODES)
    for code in CODES.values():
        cls = client_errors.BY_CODE[code.code]
        assert cls.status == code.status
        assert issubclass(cls, getattr(client_errors, code.error.__name__))
