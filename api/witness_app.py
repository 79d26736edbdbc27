"""The witness's HTTP service: ``POST /add-checkpoint`` of c2sp.org/tlog-witness, nothing else.

It is a separate, small service (``tiers witness serve``), meant for another host and another
organisation; it shares nothing with the tiers service but the protocol.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from tiers.witness import WitnessHome

__all__ = ["create_witness_app"]

# A checkpoint with its signatures and 63 proof lines is a few kilobytes.
MAX_BODY = 64 * 1024


def create_witness_app(witness: WitnessHome) -> FastAPI:
    app = FastAPI(title="tiers witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("request too large\n", status_code=413)
        # The decision writes the witness's state with an fsync: off the event loop.
        answer = await run_in_threadpool(witness.add_checkpoint, body)
        return PlainTextResponse(
            answer.body, status_code=answer.status, media_type=answer.content_type
        )

    @app.get("/")
    def about() -> PlainTextResponse:
        """The witness's verifier key, for logs and verifiers to configure."""
        return PlainTextResponse(witness.key.encode() + "\n")

    return app
