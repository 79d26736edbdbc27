"""The action each route is logged as: declared by the route itself, apart from its name.

Each route passes ``openapi_extra=logged_as(Action.X)``: the action is in the route's OpenAPI
operation (``x-tiers-action``), and a refusal made before the route ran (by the door, for the
body's size, for a malformed body) is logged with it. Renaming a route changes neither.
"""

from __future__ import annotations

from typing import Any

from audit import Action

__all__ = ["ACTION_KEY", "action_of", "logged_as"]

ACTION_KEY = "x-tiers-action"


def logged_as(action: Action, **operation: Any) -> dict[str, Any]:
    """The ``openapi_extra`` of a route logged as ``action`` (with more of its OpenAPI
    ``operation``, such as a ``requestBody`` that the route reads itself)."""
    return {ACTION_KEY: action.value, **operation}


def action_of(route: object) -> Action:
    """The action ``route`` is logged as (:attr:`Action.REQUEST` for none, or no route)."""
    extra = getattr(route, "openapi_extra", None) or {}
    declared = extra.get(ACTION_KEY)
    return Action.REQUEST if declared is None else Action(declared)
