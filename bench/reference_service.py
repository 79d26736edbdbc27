"""The API's reference: what the same framework answers when the call keeps no state.

``POST /v1/pseudonymise`` under uvicorn (started like ``tiers serve``: httptools and uvloop,
no access log), through FastAPI with the API's own request and response models, a bearer
token compared in constant time, and per value the two HMAC-SHA256 layers with prepared key
pads and a base32 pseudonym. Left out, and so the measure of what tiers adds: the database
(domain, keys, registration, cards), authentication against stored credentials, the purpose
and role checks, the access-log entry and its hash chain. Driven by the same load generator
as the service, its rate is the ceiling of this machine, framework and load generator for the
API; the benchmark reports tiers' rate as a share of it.

    TIERS_BENCH_REFERENCE_TOKEN=… python -m uvicorn bench.reference_service:app --port N
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException

from api.schemas import PseudonymiseRequest, PseudonymiseResponse
from keys._hmac import PreparedHmacSha256

_BASE = PreparedHmacSha256(hashlib.sha256(b"reference base key").digest())
_DOMAIN = PreparedHmacSha256(hashlib.sha256(b"reference domain key").digest())
_TOKEN = f"Bearer {os.environ.get('TIERS_BENCH_REFERENCE_TOKEN', '')}".encode()

app = FastAPI()


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/v1/pseudonymise", response_model=PseudonymiseResponse)
async def pseudonymise(
    body: PseudonymiseRequest, authorization: Annotated[str, Header()] = ""
) -> PseudonymiseResponse:
    if not hmac.compare_digest(authorization.encode(), _TOKEN) or _TOKEN == b"Bearer ":
        raise HTTPException(status_code=401)
    tags = _DOMAIN.digest_many(_BASE.digest_many(value.encode() for value in body.values))
    pseudonyms: list[str | None] = [
        f"ref.v1.{base64.b32encode(tag[:20]).decode().lower()}" for tag in tags
    ]
    return PseudonymiseResponse(pseudonyms=pseudonyms, errors=[])
