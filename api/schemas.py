"""Public request and response schemas of the HTTP API (with OpenAPI examples)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from errors import TiersError

__all__ = [
    "AlertOut",
    "AuditSubjectRequest",
    "CheckpointOut",
    "ClientIn",
    "ClientOut",
    "DomainIn",
    "DomainOut",
    "ErrorOut",
    "IssuedKeyOut",
    "JobOut",
    "KeyVersionOut",
    "PseudonymiseRequest",
    "PseudonymiseResponse",
    "ValueError_",
    "VerificationOut",
    "WhoAmI",
]


class _Strict(BaseModel):
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


class PseudonymiseRequest(_Strict):
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
    rows_in: int
    rows_out: int
    rows_rejected: int
    error_code: str | None
    created_at: datetime
    finished_at: datetime | None


class AuditSubjectRequest(_Strict):
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


class DomainIn(_Strict):
    name: str = Field(examples=["casino"], max_length=32)
    role: str = Field(examples=["partner"], max_length=16)
    luhn: bool = False


class DomainOut(BaseModel):
    name: str
    role: str
    luhn: bool
    created_at: datetime


class KeyVersionOut(BaseModel):
    version: int
    state: str
    created_at: datetime
    state_changed_at: datetime


class ClientIn(_Strict):
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
