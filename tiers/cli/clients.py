"""Operator commands for API clients: ``client add|list|requests|approve|revoke|rotate-key``."""

from __future__ import annotations

from typing import Annotated

import typer

from audit import Action
from tiers import approvals, clients
from tiers.cli._common import deployment, handles_errors, operator
from tiers.cli._output import (
    AsJson,
    Format,
    err_console,
    out_console,
    print_rows,
)

__all__ = ["client_app"]

client_app = typer.Typer(help="API clients and their keys.", no_args_is_help=True)


def _show_key(name: str, token: str) -> None:
    err_console.print(f"API key for {name} (shown once; store it now):", markup=False)
    out_console.print(token, markup=False, highlight=False)


@client_app.command("add")
@handles_errors
def client_add(
    name: str,
    role: Annotated[str, typer.Option(help="partner, hub, auditor or admin")],
    domain: Annotated[str | None, typer.Option(help="the domain of a partner or hub")] = None,
) -> None:
    """Create a client and print its API key once."""
    access = operator()
    with deployment(access, Action.CLIENT_ADD) as dep:
        issued = clients.add_client(dep, access=access, name=name, role=role, domain=domain)
    _show_key(name, issued.token)


@client_app.command("list")
@handles_errors
def client_list(output: Format = None, as_json: AsJson = False) -> None:
    """Clients, roles, domains and states (never keys)."""
    access = operator()
    with deployment(access, Action.CLIENT_LIST) as dep:
        found = clients.list_clients(dep, access=access)
    print_rows(
        ("name", "role", "domain", "state", "created", "revoked"),
        [
            (
                c.name,
                c.role,
                c.domain or "",
                "active" if c.active else "revoked",
                c.created_at.isoformat(timespec="seconds"),
                c.revoked_at.isoformat(timespec="seconds") if c.revoked_at else "",
            )
            for c in found
        ],
        output,
        as_json=as_json,
    )


@client_app.command("requests")
@handles_errors
def client_requests(output: Format = None, as_json: AsJson = False) -> None:
    """Requests of admin clients for a client or a key, and who decided them."""
    access = operator()
    with deployment(access, Action.CLIENT_REQUEST_LIST) as dep:
        found = approvals.list_requests(dep, access=access)
    print_rows(
        ["id", "kind", "client", "role", "domain", "by", "state", "expires", "decided by"],
        (
            [r.id, r.kind, r.name, r.role, r.domain or "", r.requested_by,
             r.state_at(access.now),
             r.expires_at.isoformat(timespec="minutes"), r.decided_by or ""]
            for r in found
        ),
        output,
        as_json=as_json,
    )  # fmt: skip


@client_app.command("approve")
@handles_errors
def client_approve(request: Annotated[str, typer.Argument(help="the request's id")]) -> None:
    """Approve an admin client's request: the client is created or re-keyed, and its API key
    printed once."""
    access = operator()
    with deployment(access, Action.CLIENT_APPROVE) as dep:
        issued = approvals.approve_request(dep, access=access, request_id=request)
    _show_key(issued.client.name, issued.token)


@client_app.command("revoke")
@handles_errors
def client_revoke(name: str) -> None:
    """Revoke a client's key at once, on every worker."""
    access = operator()
    with deployment(access, Action.CLIENT_REVOKE) as dep:
        clients.revoke_client(dep, access=access, name=name)
    out_console.print(f"client {name} revoked", markup=False)


@client_app.command("rotate-key")
@handles_errors
def client_rotate_key(name: str) -> None:
    """Issue a new key (printed once); the old one stops working at once."""
    access = operator()
    with deployment(access, Action.CLIENT_ROTATE_KEY) as dep:
        issued = clients.rotate_client_key(dep, access=access, name=name)
    _show_key(name, issued.token)
