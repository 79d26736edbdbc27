"""Error log lines name the route, never the path: a path can hold a hub linking key."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request

from api.errors import route_template
from api.routes.links import router

KEY = "hub.v1.abcdefghijklmnopqrstuvwxyz234567"


def test_an_error_line_names_the_route_not_the_key() -> None:
    (route,) = [r for r in router.routes if isinstance(r, APIRoute) and r.name == "link_resolve"]
    scope = {"type": "http", "method": "GET", "path": f"/v1/links/{KEY}", "headers": []}
    assert "/v1/links/{linking_key}" == route_template(Request({**scope, "route": route}))
    assert "(no route)" == route_template(Request(scope))
