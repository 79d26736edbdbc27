"""The product's public surface stays small and the tests keep to it.

A module's ``__all__`` is what other modules may use: every name in it is used by another
module of the product or by a test (nothing exported for nobody), or is a class that an exported
function of the module takes or returns. A name that starts with an underscore is the module's
own, a module whose name starts with one is its package's own: the tests never reach an
underscore name inside a module (they may import a private module's interface, the names its
``__all__`` lists, to test that machinery directly).
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("api", "tiers", "keys", "audit", "policy", "errors")
USERS = (*PRODUCT, "bench")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*roots: str) -> Iterator[tuple[str, ast.Module]]:
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            if "migrations" not in path.parts:
                yield _module_name(path), ast.parse(path.read_text(encoding="utf-8"))


def _exported(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            assert isinstance(node.value, ast.List)
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return []


@dataclass
class _Uses:
    """Which names of which product module each module uses."""

    names: dict[tuple[str, str], set[str]]

    @classmethod
    def of(cls, modules: dict[str, ast.Module]) -> _Uses:
        names: dict[tuple[str, str], set[str]] = defaultdict(set)
        for user, tree in modules.items():
            for module, name in _used_names(tree, user, set(modules)):
                names[module, name].add(user)
        for module, name in _entry_points():
            names[module, name].add("pyproject.toml")
        return cls(names)


def _aliases(tree: ast.Module, me: str, known: set[str]) -> dict[str, str]:
    """The local names under which ``tree`` imported modules of ``known``."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            module = _absolute(node, me)
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname})
    return aliases


def _absolute(node: ast.ImportFrom, me: str) -> str:
    assert node.module is not None
    if not node.level:
        return node.module
    return ".".join([*me.split(".")[: -node.level], node.module])


def _used_names(tree: ast.Module, me: str, known: set[str]) -> Iterator[tuple[str, str]]:
    """``(module, name)`` for each ``from module import name``, ``alias.name`` and
    ``setattr(alias, "name", …)`` (a patched constant) in ``tree``."""
    aliases = _aliases(tree, me, known)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            yield from ((_absolute(node, me), alias.name) for alias in node.names)
        elif isinstance(node, ast.Attribute):
            chain = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                dotted = [aliases.get(value.id, value.id), *reversed(chain)]
                yield from ((".".join(dotted[:cut]), dotted[cut]) for cut in range(1, len(dotted)))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "setattr":
            target, name = [*node.args, None, None][:2]
            if isinstance(target, ast.Name) and isinstance(name, ast.Constant):
                yield aliases.get(target.id, target.id), str(name.value)


def _entry_points() -> Iterator[tuple[str, str]]:
    """``(module, name)`` of the commands ``pyproject.toml`` installs."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for target in scripts.values():
        module, _, name = target.partition(":")
        yield module, name


def _signature_classes(tree: ast.Module, exported: list[str]) -> set[str]:
    """The names in the annotations of the module's exported functions, and of its exported
    classes' fields and methods."""
    found: set[str] = set()
    for node in tree.body:
        if getattr(node, "name", None) not in exported:
            continue
        functions = [node] if isinstance(node, ast.FunctionDef) else []
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.ClassDef):
            functions = [n for n in node.body if isinstance(n, ast.FunctionDef)]
            annotations += [n.annotation for n in node.body if isinstance(n, ast.AnnAssign)]
        for function in functions:
            annotations += [function.returns, *(a.annotation for a in function.args.args)]
            annotations += [a.annotation for a in function.args.kwonlyargs]
        for annotation in filter(None, annotations):
            for sub in ast.walk(annotation):
                if isinstance(sub, ast.Name):
                    found.add(sub.id)
                elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    found.update(sub.value.replace("|", " ").replace("[", " ").split())
    return found


PRODUCT_MODULES = dict(_sources(*USERS))
TEST_MODULES = dict(_sources("tests"))
USES = _Uses.of({**PRODUCT_MODULES, **TEST_MODULES})


def test_every_exported_name_has_a_user() -> None:
    unused = []
    for module, tree in PRODUCT_MODULES.items():
        exported = _exported(tree)
        in_signatures = _signature_classes(tree, exported)
        for name in exported:
            users = USES.names.get((module, name), set()) - {module}
            if not users and name not in in_signatures:
                unused.append(f"{module}.{name}")
    assert unused == [], "exported for nobody: take them out of __all__"


def test_the_tests_reach_no_underscore_name_of_the_product() -> None:
    reached = sorted(
        f"{user}: {module}.{name}"
        for (module, name), users in USES.names.items()
        if _private(name)
        and module.split(".")[0] in PRODUCT
        and f"{module}.{name}" not in PRODUCT_MODULES  # a private module: its interface is open
        for user in users
        if user.startswith("tests")
    )
    assert reached == []


def test_the_tests_patch_no_underscore_name() -> None:
    patched = []
    for user, tree in TEST_MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "setattr":
                named = [a.value for a in node.args if isinstance(a, ast.Constant)]
                patched += [f"{user}: {name}" for name in named if _private(str(name))]
    assert patched == []


def test_private_modules_are_used_only_inside_their_package() -> None:
    """``tiers._fastpath`` is used by ``tiers`` modules, ``tiers.storage._dialect`` by
    ``tiers.storage`` modules only (and by the tests and the benchmarks that measure them)."""
    strays = []
    for (module, _name), users in USES.names.items():
        parts = module.split(".")
        private_at = [i for i, part in enumerate(parts) if _private(part)]
        if parts[0] not in PRODUCT or not private_at:
            continue
        package = ".".join(parts[: private_at[0]])
        strays += [
            f"{user} uses {module}"
            for user in users
            if user != package and not user.startswith(("tests", "bench", f"{package}."))
        ]
    assert sorted(set(strays)) == []


def test_the_surface_is_counted() -> None:
    """The names the tiers package exports from its public modules, so that a change to their
    number shows in review (docs/architecture.md says what the surface is)."""
    public = [
        tree
        for module, tree in PRODUCT_MODULES.items()
        if module.startswith("tiers") and not any(map(_private, module.split(".")))
    ]
    assert (len(public), sum(len(_exported(tree)) for tree in public)) == PUBLIC


# (modules, names) of the tiers package's public modules, command line and storage included.
PUBLIC = (74, 452)
