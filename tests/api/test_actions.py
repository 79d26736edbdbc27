"""Actions named once (audit.actions): every route declares the action it is logged as, apart
from its name; no action is written as a string where the log's vocabulary is meant; every
action of the enumeration is used."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from api.actions import ACTION_KEY, action_of
from api.gate import api_routes
from audit import Action
from tests.api.conftest import Api
from tiers.authorisation import PERMISSIONS

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = f"tiers_{'a' * 10}_{'A' * 43}"
# the probes, the metrics and the API's documentation: no caller, no data, nothing logged
UNLOGGED = {
    "healthz",
    "readyz",
    "metrics",
    "custom_swagger_ui_html",
    "swagger_ui_redirect",
    "redoc_html",
}


def _product_sources() -> Iterator[tuple[Path, str]]:
    for package in ("api", "tiers", "audit"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, path.read_text(encoding="utf-8")


def test_every_route_declares_its_action(api: Api) -> None:
    # the console's pages are logged by the core operations they call (tests/console)
    routes = [r for r in api_routes(api.http.app.routes) if not r.path.startswith("/console")]
    assert len(routes) > 40
    undeclared = [
        r.name for r in routes if r.name not in UNLOGGED and action_of(r) is Action.REQUEST
    ]
    assert [] == undeclared
    operations = [
        operation
        for path in api.http.get("/openapi.json").json()["paths"].values()
        for operation in path.values()
    ]
    declared = {operation.get(ACTION_KEY) for operation in operations}
    assert declared - {None} <= {action.value for action in Action}
    assert len(declared) > 30


def test_a_refusal_at_the_door_is_logged_as_the_route_s_action_not_its_name(api: Api) -> None:
    """``POST /v1/links/resolve`` is named ``link_resolve_batch`` and logged as
    ``link_resolve``: an unknown key refused before any route ran says so."""
    before = len(api.database.audit_entries())
    refused = api.http.post(
        "/v1/links/resolve",
        headers={"Authorization": f"Bearer {UNKNOWN}", "X-Purpose": "test"},
        json={"linking_keys": []},
    )
    assert 401 == refused.status_code
    (entry,) = api.database.audit_entries()[before:]
    assert ("anonymous", "link_resolve") == (entry.actor, entry.action)


def test_no_action_is_written_as_a_string() -> None:
    """Where the log's vocabulary is meant (``audited``, ``action=``, ``require``, the command
    line's ``deployment``, ``.action ==``), the enumeration is used, never a literal."""
    literal = re.compile(
        r'(?:audited\(|\baction=|require\([a-z_.]+, |deployment\(access, |\.action == )"'
    )
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path, text in _product_sources()
        for number, line in enumerate(text.splitlines(), 1)
        if literal.search(line)
    ]
    assert [] == found


def test_every_action_is_used_and_every_permission_is_an_action() -> None:
    text = "".join(t for p, t in _product_sources() if p.name != "actions.py")
    assert [] == [a.name for a in Action if f"Action.{a.name}" not in text]
    for allowed in PERMISSIONS.values():
        assert all(isinstance(action, Action) for action in allowed)
