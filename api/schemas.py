"""Every request and response schema of the HTTP API, in one place (with OpenAPI examples).

Routes define none of their own: a change to what the API accepts or answers is a change to
this module, and `docs/api.md` and the OpenAPI document follow from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from errors import TiersError

__all__ = [
    "ERRORS",
    "JSON_ERRORS",
    "AlertOut",
    "AssociateRequest",
    "AuditSubjectRequest",
    "CampaignIn",
    "CampaignOut",
    "CardOut",
    "CardRequest",
    "CardStateOut",
    "CheckpointOut",
    "ClientIn",
    "ClientOut",
    "ClientRequestOut",
    "CompleteRequest",
    "DelimiterQuery",
    "DeliveryOut",
    "DomainIn",
    "DomainOut",
    "EncodingQuery",
    "EnrolRequest",
    "EnrolResponse",
    "ExchangeOut",
    "FileJobRequest",
    "IssuedKeyOut",
    "JobOut",
    "KeyVersionOut",
    "LinkOutcomeOut",
    "PartOut",
    "PseudonymiseRequest",
    "PseudonymiseResponse",
    "RejectOut",
    "ResolutionOut",
    "ResolveItem",
    "ResolveRequest",
    "VerificationOut",
    "WhoAmI",
    "WithdrawIn",
    "batch_results",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unknown_domain"])
    message: str = Field(examples=["unknown domain 'sncf'"])


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "invalid request"),
        (401, "missing or invalid API key"),
        (403, "the caller's role may not do this"),
        (404, "unknown (or not visible to the caller)"),
        (422, "the body does not match the schema"),
        (429, "rate limit exceeded"),
        (503, "not ready (database or keys unavailable)"),
    )
}

# The same errors for a route whose success is not JSON (a CSV download): without a model, so
# that the schema does not take the route's media type; ErrorOut is in the components already.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": error["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for status, error in ERRORS.items()
}


class WhoAmI(BaseModel):
    name: str
    role: str
    domain: str | None


class PseudonymiseRequest(Strict):
    kind: str = Field(examples=["card"], max_length=16)
    values: list[str] = Field(examples=[["4970 1012 3456", "bad"]], max_length=100_000)
    purpose: str | None = Field(default=None, examples=["monthly exchange"], max_length=200)
    domain: str | None = Field(
        default=None, description="default: the client's own domain", max_length=32
    )
    register_subjects: bool = Field(
        default=True, alias="register", description="record the subjects (default true)"
    )


class ValueError_(BaseModel):
    index: int
    code: str = Field(examples=["bad_character"])


def batch_results(results: Sequence[str | TiersError]) -> dict[str, Any]:
    """``{pseudonyms, errors}`` of a batch: a value per input, ``null`` and an error where it
    was rejected (its index and code, never the value)."""
    return {
        "pseudonyms": [None if isinstance(r, TiersError) else r for r in results],
        "errors": [
            {"index": i, "code": r.code} for i, r in enumerate(results) if isinstance(r, TiersError)
        ],
    }


class PseudonymiseResponse(BaseModel):
    pseudonyms: list[str | None] = Field(
        examples=[["casino.v1.ode2u46onfwriovbz7pa7ku54yjvc4nf", None]],
        description="one per value, in order; null where the value was rejected",
    )
    errors: list[ValueError_]


class JobOut(BaseModel):
    id: str
    state: str = Field(examples=["done"])
    domain: str
    rows_in: int = Field(description="rows read (so far, while the job runs)")
    rows_out: int
    rows_rejected: int = Field(description="rows rejected (so far, while the job runs)")
    error_code: str | None
    created_at: datetime
    finished_at: datetime | None
    bytes_received: int | None = Field(
        default=None, description="while a job in its own process runs: bytes received"
    )
    parts: int | None = Field(
        default=None, description="while a job in its own process runs: parts received"
    )


class FileJobRequest(Strict):
    """Opens a file job whose file is sent in parts (`PUT /v1/files/{id}/parts/{n}`)."""

    column: list[str] = Field(examples=[["card=card"]], min_length=1, max_length=64)
    keep: list[str] = Field(default=[], examples=[["amount", "store"]], max_length=256)
    delimiter: str | None = Field(default=None, max_length=3)
    encoding: Literal["utf-8", "cp1252", "latin-1"] = "utf-8"
    register_subjects: bool = Field(default=True, alias="register")
    purpose: str | None = Field(default=None, max_length=200)


class PartOut(BaseModel):
    part: int
    applied: bool = Field(
        description="false: the part had been received before (not applied twice)"
    )


class CompleteRequest(Strict):
    parts: int = Field(ge=1, description="the number of the last part sent")


class AuditSubjectRequest(Strict):
    domain: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    value: str = Field(max_length=1024)
    purpose: str | None = Field(default=None, max_length=200)


class CheckpointOut(BaseModel):
    origin: str
    tree_size: int
    root: str
    chain: str
    time: str
    signature: str
    key: str


class VerificationOut(BaseModel):
    intact: bool
    summary: str
    first_seq: int
    entries: int
    tree_size: int
    checkpoints: int
    key: str


class DomainIn(Strict):
    name: str = Field(examples=["casino"], max_length=32)
    role: str = Field(examples=["partner"], max_length=16)
    luhn: bool = False
    blind_only: bool = Field(
        default=False, description="a partner's domain that takes blinded identifiers only"
    )


class DomainOut(BaseModel):
    name: str
    role: str
    luhn: bool
    blind_only: bool
    created_at: datetime


class KeyVersionOut(BaseModel):
    version: int
    state: str
    created_at: datetime
    state_changed_at: datetime


class ClientIn(Strict):
    name: str = Field(examples=["casino-batch"], max_length=32)
    role: str = Field(examples=["partner"], max_length=16)
    domain: str | None = Field(default=None, examples=["casino"], max_length=32)


class ClientOut(BaseModel):
    name: str
    role: str
    domain: str | None
    active: bool
    created_at: datetime
    revoked_at: datetime | None


class IssuedKeyOut(ClientOut):
    api_key: str = Field(description="shown once: store it now, it cannot be read again")


class ClientRequestOut(BaseModel):
    """A request for a client (``add``) or a new key (``rotate``), until another admin
    approves it; ``expired`` once past ``expires_at``."""

    id: str
    kind: str = Field(examples=["add"])
    name: str
    role: str
    domain: str | None
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    state: str = Field(examples=["pending"])
    decided_by: str | None


class AlertOut(BaseModel):
    """A sign of a dictionary attack (``volume``) or of key guessing (``refusals``)."""

    kind: str = Field(examples=["volume"])
    actor: str
    hour: datetime
    observed: int
    threshold: int


# How a partner's file is read (query parameters of uploads)
DelimiterQuery = Annotated[
    str | None,
    Query(
        max_length=3,
        description="field delimiter ('tab' for a tab); default: found from the header "
        "among , ; tab |",
    ),
]
EncodingQuery = Annotated[
    Literal["utf-8", "cp1252", "latin-1"],
    Query(description="utf-8 (with or without a byte-order mark), cp1252 or latin-1"),
]


# Card links


class EnrolRequest(Strict):
    values: list[str] = Field(max_length=100_000, examples=[["4970 1012 3456"]])
    enrolled_at: datetime | None = None
    purpose: str | None = Field(default=None, max_length=200)


class EnrolResponse(BaseModel):
    pseudonyms: list[str | None]
    errors: list[ValueError_]


class AssociateRequest(Strict):
    card: str = Field(max_length=128, description="your card: its number or your pseudonym")
    other_domain: str = Field(max_length=32, examples=["sncf"])
    other_card: str = Field(max_length=128, description="the other partner's card number")
    purpose: str | None = Field(default=None, max_length=200)


class CardRequest(Strict):
    card: str = Field(max_length=128, description="your card: its number or your pseudonym")
    purpose: str | None = Field(default=None, max_length=200)


class LinkOutcomeOut(BaseModel):
    rule: str = Field(examples=["attach.first_enrolment"])
    policy_version: str
    changed: bool
    attached_here: bool = Field(description="whether you are the customer's SG")


class CardStateOut(BaseModel):
    enrolled_at: datetime
    linked: bool
    linked_at: datetime | None
    other_partners_cards: int = Field(description="cards of other partners linked with it")
    attached_to: str | None = Field(description="the customer's SG, when linked")
    attached_here: bool = Field(description="whether you are the customer's SG")


class CardOut(BaseModel):
    partner: str
    linking_key: str
    since: datetime


class ResolutionOut(BaseModel):
    alliance_key: str | None
    cards: list[CardOut]
    attached_to: str | None
    policy_version: str | None


class ResolveRequest(Strict):
    linking_keys: list[str] = Field(max_length=10_000)
    purpose: str | None = Field(default=None, max_length=200)


class ResolveItem(BaseModel):
    linking_key: str
    resolution: ResolutionOut | None = None
    error: str | None = None


# Exchanges, inboxes and campaigns


class RejectOut(BaseModel):
    line: int
    column: str
    code: str


class ExchangeOut(BaseModel):
    rows_in: int
    rows_out: int
    rows_rejected: int
    first_rejects: list[RejectOut] = Field(description="all of them are in your inbox")


class DeliveryOut(BaseModel):
    id: str
    kind: str = Field(examples=["exchange"])
    name: str
    rows: int
    sha256: str
    sender: str
    created_at: str
    acked: bool


class CampaignIn(Strict):
    name: str = Field(max_length=64, examples=["christmas-2026"])
    linking_keys: list[str] = Field(max_length=1_000_000)
    purpose: str | None = Field(default=None, max_length=200)


class CampaignOut(BaseModel):
    per_sg: dict[str, int]
    dropped: dict[str, int]


class WithdrawIn(Strict):
    card: str = Field(max_length=128)
    purpose: str | None = Field(default=None, max_length=200)


class BlindEvaluateRequest(Strict):
    elements: list[str] = Field(
        examples=[["mOqBz3S5sC0g3gZzQn1cXg2d0rY9WVm5eKq7bS1xUUk"]],
        description="blinded ristretto255 elements, 32 bytes each in unpadded base64url",
        min_length=1,
        max_length=10_000,
    )
    purpose: str | None = Field(default=None, examples=["monthly exchange"], max_length=200)
    domain: str | None = Field(
        default=None, description="default: the client's own domain", max_length=32
    )


class BlindEvaluateResponse(BaseModel):
    domain: str
    version: int = Field(description="the domain key version whose function evaluated them")
    evaluated: list[str] = Field(description="one per element, in order, unpadded base64url")
    proof: str = Field(description="RFC 9497's proof of the whole batch (64 bytes, base64url)")


class BlindTranslateRequest(Strict):
    pseudonyms: list[str] = Field(
        examples=[["casino.v1.oaqgwcz2rvtvmp5lhbzqhn2cckvq2k5fvrivohi3gztd7y6xr2hq"]],
        description="blind pseudonyms of the domain, of any key version not destroyed",
        min_length=1,
        max_length=10_000,
    )
    purpose: str | None = Field(default=None, examples=["key rotation"], max_length=200)
    domain: str | None = Field(
        default=None, description="default: the client's own domain", max_length=32
    )


class BlindTranslationProof(BaseModel):
    version: int = Field(description="the key version of the pseudonyms this proof covers")
    proof: str = Field(
        description="RFC 9497's GenerateProof with A = that version's public element and "
        "B = the active one's (64 bytes, base64url)"
    )


class BlindTranslateResponse(BaseModel):
    domain: str
    version: int = Field(description="the active key version they are re-keyed to")
    pseudonyms: list[str] = Field(description="one per pseudonym sent, in order")
    proofs: list[BlindTranslationProof] = Field(
        description="one per key version among the pseudonyms sent, by version"
    )


class BlindKeyOut(BaseModel):
    version: int
    state: str = Field(examples=["active"])
    public: str = Field(description="the function's public element, unpadded base64url")


class BlindKeysResponse(BaseModel):
    domain: str
    card_luhn: bool = Field(
        description="whether the domain's card numbers must pass the Luhn check (normalisation)"
    )
    phone_region: str = Field(
        examples=["FR"], description="the region of phone numbers written without a country code"
    )
    keys: list[BlindKeyOut] = Field(description="the active version first")
    scheme: str = Field(
        examples=["oprf"],
        description="the deployment's scheme: under oprf a blind pseudonym is the domain's own "
        "pseudonym (cards, links, exchanges take it); under hmac it is the partner's own",
    )
