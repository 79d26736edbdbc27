"""Operator commands: ``init``, ``domain …`` and ``key …``."""

from __future__ import annotations

import base64
from typing import Annotated

import typer

from audit import Action
from errors import InvalidRequest
from tiers import admin, blind
from tiers.cli._common import (
    counted,
    deployment,
    handles_errors,
    load_settings,
    operator,
    warn_development_key,
)
from tiers.cli._output import (
    AsJson,
    Format,
    out_console,
    print_rows,
)

__all__ = ["domain_app", "init", "key_app"]

domain_app = typer.Typer(
    help="Pseudonymisation domains (one per partner, one for the hub).", no_args_is_help=True
)
key_app = typer.Typer(help="Domain keys: versions, rotation, destruction.", no_args_is_help=True)


@handles_errors
def init(
    scheme: Annotated[
        str | None,
        typer.Option(
            help="hmac (the default) or oprf (blind mode throughout); chosen by the first "
            "init, never changed",
            metavar="SCHEME",
        ),
    ] = None,
) -> None:
    """Create or check the home, the database schema, the master key and the base key."""
    report = admin.initialise(load_settings(), access=operator(), scheme=scheme)
    if report.generated_development_key:
        out_console.print(f"generated a development master key in {report.home}")
    if report.development_key:
        warn_development_key(report.master_key_source)
    out_console.print(f"database: {report.database}", markup=False)
    out_console.print("created: " + (", ".join(report.created) or "nothing (already initialised)"))
    out_console.print(f"scheme: {report.scheme}")
    out_console.print("tiers is initialised")


@domain_app.command("add")
@handles_errors
def domain_add(
    name: Annotated[str, typer.Argument(help="[a-z][a-z0-9-]{1,31}")],
    role: Annotated[str, typer.Option(help="partner, hub or audit")],
    luhn: Annotated[
        bool, typer.Option("--luhn", help="require a valid Luhn check on cards")
    ] = False,
    blind_only: Annotated[
        bool,
        typer.Option(
            "--blind-only", help="a partner sending blinded identifiers only: refuse clear ones"
        ),
    ] = False,
) -> None:
    """Create a domain and its first key."""
    access = operator()
    with deployment(access, Action.DOMAIN_ADD) as dep:
        record = admin.add_domain(
            dep, access=access, name=name, role=role, card_luhn=luhn, blind_only=blind_only
        )
    blind = ", blind-only" if record.blind_only else ""
    out_console.print(f"added domain {record.name} ({record.role}{blind}), key version 1 active")


@domain_app.command("list")
@handles_errors
def domain_list(output: Format = None, as_json: AsJson = False) -> None:
    """List the domains."""
    access = operator()
    with deployment(access, Action.DOMAIN_LIST) as dep:
        records = admin.list_domains(dep, access=access)
    print_rows(
        ("name", "role", "luhn", "blind only", "created"),
        [
            (
                record.name,
                record.role,
                "yes" if record.card_luhn else "no",
                "yes" if record.blind_only else "no",
                record.created_at.isoformat(timespec="seconds"),
            )
            for record in records
        ],
        output,
        as_json=as_json,
    )


@key_app.command("rotate")
@handles_errors
def key_rotate(domain: str) -> None:
    """New active key version; stored pseudonyms are re-derived; the old one stays verify-only."""
    access = operator()
    with deployment(access, Action.KEY_ROTATE) as dep:
        rotation = admin.rotate_key(dep, access=access, domain=domain)
    out_console.print(
        f"{rotation.domain}: version {rotation.new_version} active, version "
        f"{rotation.old_version} verify-only; {counted(rotation.reindexed, 'pseudonym')} re-derived"
    )


@key_app.command("list")
@handles_errors
def key_list(domain: str, output: Format = None, as_json: AsJson = False) -> None:
    """Versions, states and dates of a domain's keys (never the keys)."""
    access = operator()
    with deployment(access, Action.KEY_LIST) as dep:
        versions = admin.list_keys(dep, access=access, domain=domain)
    print_rows(
        ("version", "state", "created", "state since", "overlap ends"),
        [
            (
                str(version.version),
                version.state.value,
                version.created_at.isoformat(timespec="seconds"),
                version.state_changed_at.isoformat(timespec="seconds"),
                (version.state_changed_at + dep.settings.rotation_overlap).date().isoformat()
                if version.state.value == "verify-only"
                else "",
            )
            for version in versions
        ],
        output,
        as_json=as_json,
    )


@key_app.command("blind-public")
@handles_errors
def key_blind_public(domain: str, output: Format = None, as_json: AsJson = False) -> None:
    """Blind mode: the public element of each version of a domain's oblivious function (not
    destroyed, the active one first), for its partner to pin, and how it normalises."""
    access = operator()
    with deployment(access, Action.BLIND_KEYS) as dep:
        found = blind.blind_keys(dep, access=access, domain=domain)
    switches = found.normalisation
    print_rows(
        ("version", "state", "public", "luhn", "phone region"),
        [
            (
                str(key.version),
                key.state,
                base64.urlsafe_b64encode(key.public).rstrip(b"=").decode("ascii"),
                "yes" if switches.card_luhn else "no",
                switches.phone_region,
            )
            for key in found.keys
        ],
        output,
        as_json=as_json,
    )


@key_app.command("destroy")
@handles_errors
def key_destroy(
    domain: str,
    version: Annotated[int, typer.Option(help="the key version to destroy")],
    yes: Annotated[bool, typer.Option("--yes", help="confirm: this cannot be undone")] = False,
) -> None:
    """Crypto-shred one key version: its pseudonyms become permanently unlinkable."""
    access = operator()
    with deployment(access, Action.KEY_DESTROY) as dep:
        if not yes:
            raise InvalidRequest(
                "destroying a key cannot be undone; add --yes", code="not_confirmed"
            )
        result = admin.destroy_key(dep, access=access, domain=domain, version=version)
    out_console.print(
        f"{result.domain}: version {result.version} destroyed; "
        f"{counted(result.unlinked, 'pseudonym')} unlinked for good"
    )


@key_app.command("retire")
@handles_errors
def key_retire(
    domain: str,
    version: Annotated[int, typer.Option(help="the verify-only version to retire")],
    force: Annotated[bool, typer.Option("--force", help="before the overlap window ends")] = False,
) -> None:
    """End a verify-only version's overlap window: its keys stop resolving, for good."""
    access = operator()
    with deployment(access, Action.KEY_RETIRE) as dep:
        result = admin.retire_key(dep, access=access, domain=domain, version=version, force=force)
    out_console.print(
        f"{result.domain}: version {result.version} retired; "
        f"{counted(result.unlinked, 'key')} no longer resolve",
        markup=False,
    )
