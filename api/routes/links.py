"""Card links over HTTP: partners enrol, associate, dissociate, transfer; the hub resolves."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.actions import logged_as
from api.calls import resolve_grouped
from api.deps import CurrentClient, DataAccess, DeploymentDep, PurposeHeader, access_with
from api.schemas import (
    ERRORS,
    AssociateRequest,
    CardOut,
    CardRequest,
    CardStateOut,
    EnrolRequest,
    EnrolResponse,
    LinkOutcomeOut,
    ResolutionOut,
    ResolveItem,
    ResolveRequest,
    batch_results,
)
from audit import Action
from errors import InvalidRequest, TiersError
from tiers import cards, links, resolution

router = APIRouter(prefix="/v1", responses=ERRORS)


def _outcome(result: links.LinkOutcome) -> LinkOutcomeOut:
    return LinkOutcomeOut(
        rule=result.rule,
        policy_version=result.policy_version,
        changed=result.changed,
        attached_here=result.attached_here,
    )


def _resolution(result: resolution.Resolution) -> ResolutionOut:
    return ResolutionOut(
        alliance_key=result.alliance_key,
        attached_to=result.attached_to,
        policy_version=result.policy_version,
        cards=[
            CardOut(partner=c.partner, linking_key=c.linking_key, since=c.since)
            for c in result.cards
        ],
    )


@router.post(
    "/cards/enrol",
    name="card_enrol",
    openapi_extra=logged_as(Action.CARD_ENROL),
    response_model=EnrolResponse,
    tags=["partner"],
)
def enrol(
    request: Request,
    body: EnrolRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> EnrolResponse:
    """Enrol your cards (clear numbers, or your own pseudonyms of them: blind ones under the
    oprf scheme); their pseudonyms in the active version in order, errors by index."""
    access = access_with(request, body.purpose or purpose, required=True)
    results = cards.enrol_cards(
        deployment,
        access=access,
        domain=client.domain or "",
        values=body.values,
        enrolled_at=body.enrolled_at,
    )
    return EnrolResponse(**batch_results(results))


@router.post(
    "/cards/associate",
    name="card_associate",
    openapi_extra=logged_as(Action.CARD_ASSOCIATE),
    response_model=LinkOutcomeOut,
    tags=["partner"],
    responses={409: {"description": "refused by a policy rule"}},
)
def associate(
    request: Request,
    body: AssociateRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> LinkOutcomeOut:
    """Link your card with another partner's card presented at your desk. A refusal is 409
    with the rule's name as its code; you learn nothing of the other partner's customer."""
    access = access_with(request, body.purpose or purpose, required=True)
    return _outcome(
        links.associate(
            deployment,
            access=access,
            domain=client.domain or "",
            card=body.card,
            other_domain=body.other_domain,
            other_card=body.other_card,
        )
    )


@router.post(
    "/cards/dissociate",
    name="card_dissociate",
    openapi_extra=logged_as(Action.CARD_DISSOCIATE),
    response_model=LinkOutcomeOut,
    tags=["partner"],
)
def dissociate(
    request: Request,
    body: CardRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> LinkOutcomeOut:
    """Take your card out of its alliance customer."""
    access = access_with(request, body.purpose or purpose, required=True)
    return _outcome(
        links.dissociate(deployment, access=access, domain=client.domain or "", card=body.card)
    )


@router.post(
    "/customers/transfer",
    name="customer_transfer",
    openapi_extra=logged_as(Action.CUSTOMER_TRANSFER),
    response_model=LinkOutcomeOut,
    tags=["partner"],
    responses={409: {"description": "refused by a policy rule"}},
)
def transfer(
    request: Request,
    body: CardRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> LinkOutcomeOut:
    """The customer asks you (a partner allowed as SG) to become their SG, with your card."""
    access = access_with(request, body.purpose or purpose, required=True)
    return _outcome(
        links.transfer(deployment, access=access, domain=client.domain or "", card=body.card)
    )


@router.get(
    "/cards/{pseudonym}",
    name="card_show",
    openapi_extra=logged_as(Action.CARD_SHOW),
    response_model=CardStateOut,
    tags=["partner"],
)
def card_show(
    pseudonym: str, deployment: DeploymentDep, client: CurrentClient, access: DataAccess
) -> CardStateOut:
    """Your card, by its pseudonym (never its number, which a URL would carry into logs):
    whether it is linked, to how many cards of other partners, and the customer's SG."""
    if ".v" not in pseudonym:
        raise InvalidRequest(
            "name the card by your pseudonym of it, never by its number, in a URL",
            code="pseudonym_required",
        )
    state = cards.card_state(deployment, access=access, domain=client.domain or "", card=pseudonym)
    return CardStateOut(
        enrolled_at=state.enrolled_at,
        linked=state.linked,
        linked_at=state.linked_at,
        other_partners_cards=state.other_partners_cards,
        attached_to=state.attached_to,
        attached_here=state.attached_here,
    )


@router.get(
    "/links/{linking_key}",
    name="link_resolve",
    openapi_extra=logged_as(Action.LINK_RESOLVE),
    response_model=ResolutionOut,
    tags=["hub"],
)
async def link(linking_key: str, deployment: DeploymentDep, access: DataAccess) -> ResolutionOut:
    """The customer behind a hub linking key (a card's or the customer's): its alliance key,
    cards as hub keys, and attached SG."""
    return _resolution(await resolve_grouped(deployment, access, linking_key))


@router.post(
    "/links/resolve",
    name="link_resolve_batch",
    openapi_extra=logged_as(Action.LINK_RESOLVE),
    response_model=list[ResolveItem],
    tags=["hub"],
)
def resolve(
    request: Request,
    body: ResolveRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> list[ResolveItem]:
    """Many linking keys at once, in order; an unknown key gets its error code in its place."""
    access = access_with(request, body.purpose or purpose, required=True)
    results = resolution.resolve(deployment, access=access, linking_keys=body.linking_keys)
    return [
        ResolveItem(linking_key=key, error=r.code)
        if isinstance(r, TiersError)
        else ResolveItem(linking_key=key, resolution=_resolution(r))
        for key, r in zip(body.linking_keys, results, strict=True)
    ]
