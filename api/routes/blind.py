"""Blind mode (RFC 9497): a partner's blinded elements evaluated by its domain's oblivious
function, and the function's public keys (:mod:`tiers.blind`)."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Path, Request

from api.actions import logged_as
from api.calls import call
from api.deps import CurrentAccess, CurrentClient, DeploymentDep, PurposeHeader, access_with
from api.schemas import (
    ERRORS,
    BlindEvaluateRequest,
    BlindEvaluateResponse,
    BlindKeyOut,
    BlindKeysResponse,
    BlindTranslateRequest,
    BlindTranslateResponse,
    BlindTranslationProof,
)
from audit import Action
from errors import InvalidRequest
from tiers import blind

router = APIRouter(prefix="/v1/blind", responses=ERRORS)


def _element(text: str) -> bytes:
    """An element as sent: 32 bytes in unpadded base64url (its checks as an element follow)."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        data = b""
    if len(data) != 32 or len(text) != 43:
        raise InvalidRequest("an element is not 32 bytes of base64url", code="bad_element")
    return data


def _text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@router.post(
    "/evaluate",
    name="blind_evaluate",
    openapi_extra=logged_as(Action.BLIND_EVALUATE),
    response_model=BlindEvaluateResponse,
    tags=["partner"],
)
async def evaluate(
    request: Request,
    body: BlindEvaluateRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> BlindEvaluateResponse:
    """Evaluate up to 10 000 blinded elements with the domain's oblivious function, in order,
    with one proof of them all (RFC 9497, ristretto255-SHA512, verifiable mode). The service
    never sees the identifiers: the partner blinds them, checks the proof against the
    domain's public key (`GET /v1/blind/keys/{domain}`) and unblinds. One element that is not
    a group element, or is the identity, refuses the call (`bad_element`)."""
    access = access_with(request, body.purpose or purpose, required=True)
    elements = [_element(text) for text in body.elements]
    domain = body.domain or client.domain or ""
    result = await call(
        deployment,
        lambda: blind.evaluate_blinded(deployment, access=access, domain=domain, elements=elements),
        short=False,
    )
    return BlindEvaluateResponse(
        domain=result.domain,
        version=result.version,
        evaluated=[_text(element) for element in result.evaluated],
        proof=_text(result.proof),
    )


@router.get(
    "/keys/{domain}",
    name="blind_keys",
    openapi_extra=logged_as(Action.BLIND_KEYS),
    response_model=BlindKeysResponse,
    tags=["partner"],
)
async def keys(
    deployment: DeploymentDep,
    access: CurrentAccess,
    domain: str = Path(max_length=32),
) -> BlindKeysResponse:
    """The public element of each version of the domain's oblivious function that is not
    destroyed, the active one first: what a partner checks each batch's proof against. With
    them, how the service normalises the domain's identifiers (its card numbers' Luhn check,
    the region of national phone numbers), which the partner's normalisation must follow, and
    the deployment's scheme."""
    found = await call(
        deployment, lambda: blind.blind_keys(deployment, access=access, domain=domain), short=True
    )
    return BlindKeysResponse(
        domain=found.domain,
        card_luhn=found.normalisation.card_luhn,
        phone_region=found.normalisation.phone_region,
        keys=[
            BlindKeyOut(version=k.version, state=k.state, public=_text(k.public))
            for k in found.keys
        ],
        scheme=found.scheme,
    )


@router.post(
    "/translate",
    name="blind_translate",
    openapi_extra=logged_as(Action.BLIND_TRANSLATE),
    response_model=BlindTranslateResponse,
    tags=["partner"],
)
async def translate(
    request: Request,
    body: BlindTranslateRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> BlindTranslateResponse:
    """Re-key up to 10 000 of the domain's blind pseudonyms (`<domain>.v<version>.<52 base32>`,
    of any key version not destroyed) to its active version, in order, without the
    identifiers behind them: after a key rotation, a partner's stored blind pseudonyms follow
    the key. One pseudonym that is not one of the domain's refuses the call. With one proof per
    source version, which the partner checks with that version's public element as RFC 9497's
    `A` and the active one's as `B`: the pseudonyms of that version were all re-keyed by the
    one scalar that takes the first key to the second."""
    access = access_with(request, body.purpose or purpose, required=True)
    domain = body.domain or client.domain or ""
    result = await call(
        deployment,
        lambda: blind.translate_blinded(
            deployment, access=access, domain=domain, pseudonyms=body.pseudonyms
        ),
        short=False,
    )
    return BlindTranslateResponse(
        domain=result.domain,
        version=result.version,
        pseudonyms=result.pseudonyms,
        proofs=[
            BlindTranslationProof(version=version, proof=_text(proof))
            for version, proof in sorted(result.proofs.items())
        ],
    )
