"""Commands for card links and the attachment policy: ``card …``, ``customer …``, ``link show``
and ``policy check|diff|apply``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from audit import Action
from errors import NotFound, TiersError
from tiers import cards, links, policies, resolution
from tiers.cli._common import EXIT_REJECTS, Purpose, deployment, handles_errors, operator
from tiers.cli._output import (
    AsJson,
    Format,
    out_console,
    print_record,
    print_rows,
    wants_json,
)

__all__ = ["card_app", "customer_app", "link_app", "policy_app"]

card_app = typer.Typer(help="Loyalty cards: enrol, associate, dissociate.", no_args_is_help=True)
customer_app = typer.Typer(help="Alliance customers: transfer to another SG.", no_args_is_help=True)
link_app = typer.Typer(help="The hub's view of card links.", no_args_is_help=True)
policy_app = typer.Typer(help="The attachment policy: check, diff, apply.", no_args_is_help=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}", code="no_such_file") from None


def _outcome(result: links.LinkOutcome) -> None:
    state = "changed" if result.changed else "unchanged"
    here = "; this partner is the SG" if result.attached_here else ""
    out_console.print(
        f"{result.rule} ({state}, policy {result.policy_version}){here}", markup=False
    )


@card_app.command("enrol")
@handles_errors
def card_enrol(
    values: Annotated[list[str], typer.Argument(help="card numbers, or the partner's pseudonyms")],
    domain: Annotated[str, typer.Option(help="the partner enrolling them")],
    date: Annotated[str | None, typer.Option(help="enrolment date (ISO), default now")] = None,
    purpose: Purpose = None,
) -> None:
    """Enrol cards; prints each card's pseudonym, or error:<code>."""
    access = operator(purpose)
    with deployment(access, Action.CARD_ENROL, purpose=purpose) as dep:
        when = datetime.fromisoformat(date) if date else None
        results = cards.enrol_cards(
            dep, access=access, domain=domain, values=values, enrolled_at=when
        )
    failed = False
    for result in results:
        failed |= isinstance(result, TiersError)
        out_console.print(
            f"error:{result.code}" if isinstance(result, TiersError) else result,
            markup=False,
        )
    if failed:
        raise typer.Exit(EXIT_REJECTS)


@card_app.command("associate")
@handles_errors
def card_associate(
    card: Annotated[str, typer.Argument(help="this partner's card (number or pseudonym)")],
    other_card: Annotated[str, typer.Argument(help="the other partner's card number")],
    domain: Annotated[str, typer.Option(help="the partner at whose desk this happens")],
    other_domain: Annotated[str, typer.Option(help="the other card's partner")],
    purpose: Purpose = None,
) -> None:
    """Link two cards into one alliance customer (refused with the rule's name)."""
    access = operator(purpose)
    with deployment(access, Action.CARD_ASSOCIATE, purpose=purpose) as dep:
        _outcome(
            links.associate(
                dep,
                access=access,
                domain=domain,
                card=card,
                other_domain=other_domain,
                other_card=other_card,
            )
        )


@card_app.command("dissociate")
@handles_errors
def card_dissociate(
    card: Annotated[str, typer.Argument(help="this partner's card (number or pseudonym)")],
    domain: Annotated[str, typer.Option(help="the partner")],
    purpose: Purpose = None,
) -> None:
    """Take a card out of its alliance customer."""
    access = operator(purpose)
    with deployment(access, Action.CARD_DISSOCIATE, purpose=purpose) as dep:
        _outcome(links.dissociate(dep, access=access, domain=domain, card=card))


@card_app.command("show")
@handles_errors
def card_show(
    card: Annotated[str, typer.Argument(help="this partner's card (number or pseudonym)")],
    domain: Annotated[str, typer.Option(help="the partner")],
    purpose: Purpose = None,
    output: Format = None,
    as_json: AsJson = False,
) -> None:
    """A partner's card: linked or not, to how many other partners' cards, and its SG."""
    access = operator(purpose)
    with deployment(access, Action.CARD_SHOW, purpose=purpose) as dep:
        state = cards.card_state(dep, access=access, domain=domain, card=card)
    print_record(
        {
            "enrolled": state.enrolled_at.isoformat(timespec="seconds"),
            "linked": state.linked,
            "linked since": state.linked_at.isoformat(timespec="seconds")
            if state.linked_at
            else None,
            "other partners' cards": state.other_partners_cards,
            "attached to": state.attached_to,
        },
        output,
        as_json=as_json,
    )


@customer_app.command("transfer")
@handles_errors
def customer_transfer(
    card: Annotated[str, typer.Argument(help="the customer's card at the new SG")],
    domain: Annotated[str, typer.Option(help="the SG the customer moves to")],
    purpose: Purpose = None,
) -> None:
    """Move a customer to another SG at their request (the policy decides)."""
    access = operator(purpose)
    with deployment(access, Action.CUSTOMER_TRANSFER, purpose=purpose) as dep:
        _outcome(links.transfer(dep, access=access, domain=domain, card=card))


@link_app.command("show")
@handles_errors
def link_show(
    linking_key: Annotated[str, typer.Argument(help="a hub linking key (card or customer)")],
    domain: Annotated[str, typer.Option(help="the hub domain")] = "hub",
    purpose: Purpose = None,
    output: Format = None,
    as_json: AsJson = False,
) -> None:
    """What the hub sees for one linking key: customer key, cards, attached SG."""
    access = operator(purpose)
    with deployment(access, Action.LINK_RESOLVE, purpose=purpose) as dep:
        (result,) = resolution.resolve(dep, access=access, linking_keys=[linking_key], strict=True)
    assert isinstance(result, resolution.Resolution)
    cards = [
        {"partner": v.partner, "linking key": v.linking_key, "since": v.since.isoformat()}
        for v in result.cards
    ]
    print_record(
        {
            "alliance key": result.alliance_key,
            "attached to": result.attached_to,
            "policy": result.policy_version,
            "cards": cards if wants_json(output, as_json) else len(cards),
        },
        output,
        as_json=as_json,
    )
    if not (wants_json(output, as_json)):
        print_rows(("partner", "linking key", "since"), [list(c.values()) for c in cards], output)


@policy_app.command("check")
@handles_errors
def policy_check(file: Path) -> None:
    """Validate a policy file (errors name the key and line)."""
    access = operator()
    with deployment(access, Action.POLICY_CHECK) as dep:
        policy = policies.check_policy(dep, access=access, data=_read(file))
    out_console.print(f"valid: {policy.name}, version {policy.version}", markup=False)


def _print_diff(diff: policies.PolicyDiff, applied: bool) -> None:
    verb = "re-attached" if applied else "would re-attach"
    out_console.print(
        json.dumps(
            {
                "from": diff.old_version,
                "to": diff.new_version,
                "customers": diff.customers,
                verb: diff.reattach,
                "kept as they are (grandfathered)": diff.grandfathered,
            },
            indent=1,
        ),
        markup=False,
    )


@policy_app.command("diff")
@handles_errors
def policy_diff(file: Path) -> None:
    """Dry run: whom a new version would re-attach, as counts per rule."""
    access = operator()
    with deployment(access, Action.POLICY_DIFF) as dep:
        _print_diff(policies.diff_policy(dep, access=access, data=_read(file)), applied=False)


@policy_app.command("apply")
@handles_errors
def policy_apply(file: Path) -> None:
    """Put a new version in force; the re-attachments it requires are made and logged."""
    access = operator()
    with deployment(access, Action.POLICY_APPLY) as dep:
        _print_diff(policies.apply_policy(dep, access=access, data=_read(file)), applied=True)
