"""Each call of the API once, as data: its method, path, parameters and body, whether it may be
sent again (idempotent by design), and how its answer is read. The sync and async clients send
the same calls; only the sending differs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from tiers_client.models import (
    BlindEvaluation,
    BlindKeys,
    BlindTranslation,
    CampaignReport,
    CardState,
    Delivery,
    ExchangeReport,
    Job,
    LinkOutcome,
    Resolution,
    ValueRefused,
    Verification,
    WhoAmI,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    # Sent again after a 429 or a 503, or a connection lost before the answer, only when
    # sending it twice does what sending it once does: reads, pseudonyms (the same value gives
    # the same pseudonym), resolutions, parts of a file (recognised by number and digest).
    idempotent: bool = False
    purpose: str | None = None
    content: bytes | None = None  # a raw body (a part of a file), instead of ``json``
    headers: Mapping[str, str] = field(default_factory=dict)
    # ``read`` takes ``(body, response headers)`` instead of the body (a page and its cursor)
    with_headers: bool = False


def _batch(answer: Any) -> list[str | ValueRefused]:
    refused = {e["index"]: ValueRefused(e["index"], e["code"]) for e in answer["errors"]}
    return [refused.get(i, p) for i, p in enumerate(answer["pseudonyms"])]


def _segment(value: str) -> str:
    return quote(value, safe="")


def whoami() -> Call[WhoAmI]:
    return Call("GET", "/v1/whoami", WhoAmI.of, idempotent=True)


def pseudonymise(
    kind: str, values: Sequence[str], *, domain: str | None, register: bool, purpose: str | None
) -> Call[list[str | ValueRefused]]:
    body = {"kind": kind, "values": list(values), "register": register}
    if domain is not None:
        body["domain"] = domain
    return Call("POST", "/v1/pseudonymise", _batch, json=body, idempotent=True, purpose=purpose)


def blind_keys(domain: str, purpose: str | None) -> Call[BlindKeys]:
    path = f"/v1/blind/keys/{_segment(domain)}"
    return Call("GET", path, BlindKeys.of, idempotent=True, purpose=purpose)


def blind_evaluate(
    elements: Sequence[bytes], domain: str, purpose: str | None
) -> Call[BlindEvaluation]:
    """Evaluating elements again gives the same evaluations (a new proof): idempotent."""
    texts = [base64.urlsafe_b64encode(e).rstrip(b"=").decode("ascii") for e in elements]
    body = {"elements": texts, "domain": domain}
    return Call(
        "POST", "/v1/blind/evaluate", BlindEvaluation.of, json=body, idempotent=True,
        purpose=purpose,
    )  # fmt: skip


def blind_translate(
    pseudonyms: Sequence[str], domain: str | None, purpose: str | None
) -> Call[BlindTranslation]:
    """Translating again gives the same pseudonyms: idempotent."""
    body: dict[str, Any] = {"pseudonyms": list(pseudonyms)}
    if domain is not None:
        body["domain"] = domain
    return Call(
        "POST", "/v1/blind/translate", BlindTranslation.of, json=body, idempotent=True,
        purpose=purpose,
    )  # fmt: skip


def jobs(purpose: str | None) -> Call[list[Job]]:
    return Call(
        "GET", "/v1/jobs", lambda a: [Job.of(j) for j in a], idempotent=True, purpose=purpose
    )


def job(job_id: str, purpose: str | None) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", Job.of, idempotent=True, purpose=purpose)


def open_parts(options: Mapping[str, Any], purpose: str | None) -> Call[Job]:
    return Call("POST", "/v1/files", Job.of, json=dict(options), purpose=purpose)


_OCTETS = "application/octet-stream"


def part(job_id: str, number: int, data: bytes, purpose: str | None) -> Call[bool]:
    """Part ``number`` of a job's file; its answer tells whether it was applied now."""
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return Call(
        "PUT", f"/v1/files/{_segment(job_id)}/parts/{number}", lambda a: bool(a["applied"]),
        idempotent=True, purpose=purpose, content=data,
        headers={"Content-Digest": f"sha-256=:{digest}:", "Content-Type": _OCTETS},
    )  # fmt: skip


def complete(job_id: str, parts: int, purpose: str | None) -> Call[Job]:
    path = f"/v1/files/{_segment(job_id)}/complete"
    return Call("POST", path, Job.of, json={"parts": parts}, purpose=purpose)


def delete_job(job_id: str, purpose: str | None) -> Call[None]:
    return Call("DELETE", f"/v1/jobs/{_segment(job_id)}", lambda _: None, purpose=purpose)


def enrol(values: Sequence[str], purpose: str | None) -> Call[list[str | ValueRefused]]:
    body = {"values": list(values)}
    return Call("POST", "/v1/cards/enrol", _batch, json=body, idempotent=True, purpose=purpose)


def associate(
    card: str, other_domain: str, other_card: str, purpose: str | None
) -> Call[LinkOutcome]:
    body = {"card": card, "other_domain": other_domain, "other_card": other_card}
    return Call("POST", "/v1/cards/associate", LinkOutcome.of, json=body, purpose=purpose)


def card_change(path: str, card: str, purpose: str | None) -> Call[LinkOutcome]:
    return Call("POST", path, LinkOutcome.of, json={"card": card}, purpose=purpose)


def withdraw(card: str, purpose: str | None) -> Call[int]:
    return Call(
        "POST",
        "/v1/customers/withdraw",
        lambda a: int(a["hub_keys_withdrawn"]),
        json={"card": card},
        purpose=purpose,
    )


def card_state(pseudonym: str, purpose: str | None) -> Call[CardState]:
    path = f"/v1/cards/{_segment(pseudonym)}"
    return Call("GET", path, CardState.of, idempotent=True, purpose=purpose)


def inbox(include_acked: bool, purpose: str | None) -> Call[list[Delivery]]:
    params = {"include_acked": "true"} if include_acked else {}
    return Call(
        "GET",
        "/v1/inbox",
        lambda a: [Delivery.of(d) for d in a],
        params=params,
        idempotent=True,
        purpose=purpose,
    )


def ack(delivery_id: str, purpose: str | None) -> Call[None]:
    path = f"/v1/inbox/{_segment(delivery_id)}/ack"
    return Call("POST", path, lambda _: None, idempotent=True, purpose=purpose)


def resolve(linking_keys: Sequence[str], purpose: str | None) -> Call[list[Resolution | str]]:
    def read(answer: Any) -> list[Resolution | str]:
        return [
            Resolution.of(item["resolution"]) if item.get("resolution") else item["error"]
            for item in answer
        ]

    body = {"linking_keys": list(linking_keys)}
    return Call("POST", "/v1/links/resolve", read, json=body, idempotent=True, purpose=purpose)


def campaign(name: str, linking_keys: Sequence[str], purpose: str | None) -> Call[CampaignReport]:
    body = {"name": name, "linking_keys": list(linking_keys)}
    return Call("POST", "/v1/campaigns", CampaignReport.of, json=body, purpose=purpose)


def _page(answer: tuple[Any, Mapping[str, str]]) -> tuple[list[dict[str, Any]], int | None]:
    body, headers = answer
    following = headers.get("x-next-after")
    return list(body), None if following is None else int(following)


def audit_entries(
    filters: Mapping[str, Any], purpose: str | None, after: int | None = None
) -> Call[tuple[list[dict[str, Any]], int | None]]:
    """A page of entries and the cursor of the next (None at the end)."""
    params = {k: v for k, v in filters.items() if v is not None}
    if after is not None:
        params["after"] = after
    return Call(
        "GET",
        "/v1/audit/entries",
        _page,
        params=params,
        idempotent=True,
        purpose=purpose,
        with_headers=True,
    )


def audit_verify(purpose: str | None) -> Call[Verification]:
    return Call("GET", "/v1/audit/verify", Verification.of, idempotent=True, purpose=purpose)


def audit_subject(
    domain: str, kind: str, value: str, purpose: str | None
) -> Call[list[dict[str, Any]]]:
    body = {"domain": domain, "kind": kind, "value": value}
    return Call("POST", "/v1/audit/subject", list, json=body, idempotent=True, purpose=purpose)


def exchange_report(answer: Any) -> ExchangeReport:
    return ExchangeReport.of(answer)
