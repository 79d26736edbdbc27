"""What the service answers, typed. Each is read from the API's JSON by its ``of``."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class WhoAmI:
    name: str
    role: str
    domain: str | None

    @classmethod
    def of(cls, answer: Any) -> WhoAmI:
        return cls(answer["name"], answer["role"], answer.get("domain"))


@dataclass(frozen=True, slots=True)
class ValueRefused:
    """A value of a batch that was refused: its place in the batch and the code (never the
    value)."""

    index: int
    code: str


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    state: str
    domain: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    error_code: str | None
    created_at: datetime
    finished_at: datetime | None
    # While a job in parts (or a large upload) runs: what it has received so far.
    bytes_received: int | None = None
    parts: int | None = None

    @classmethod
    def of(cls, answer: Any) -> Job:
        created = _time(answer["created_at"])
        assert created is not None
        return cls(
            answer["id"], answer["state"], answer["domain"], answer["rows_in"],
            answer["rows_out"], answer["rows_rejected"], answer.get("error_code"), created,
            _time(answer.get("finished_at")), answer.get("bytes_received"), answer.get("parts"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    column: str
    code: str


@dataclass(frozen=True, slots=True)
class FileResult:
    """A file tokenised by the service: its job, and where its outputs were written."""

    job: Job
    output: str
    rejects: str


@dataclass(frozen=True, slots=True)
class ExchangeReport:
    rows_in: int
    rows_out: int
    rows_rejected: int
    first_rejects: list[Reject]

    @classmethod
    def of(cls, answer: Any) -> ExchangeReport:
        rejects = [Reject(r["line"], r["column"], r["code"]) for r in answer["first_rejects"]]
        return cls(answer["rows_in"], answer["rows_out"], answer["rows_rejected"], rejects)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    kind: str
    name: str
    rows: int
    sha256: str
    sender: str
    created_at: datetime
    acked: bool

    @classmethod
    def of(cls, answer: Any) -> Delivery:
        created = _time(answer["created_at"])
        assert created is not None
        return cls(
            answer["id"], answer["kind"], answer["name"], answer["rows"], answer["sha256"],
            answer["sender"], created, answer["acked"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    rule: str
    policy_version: str
    changed: bool
    attached_here: bool

    @classmethod
    def of(cls, answer: Any) -> LinkOutcome:
        return cls(
            answer["rule"], answer["policy_version"], answer["changed"], answer["attached_here"]
        )


@dataclass(frozen=True, slots=True)
class CardState:
    enrolled_at: datetime
    linked: bool
    linked_at: datetime | None
    other_partners_cards: int
    attached_to: str | None
    attached_here: bool

    @classmethod
    def of(cls, answer: Any) -> CardState:
        enrolled = _time(answer["enrolled_at"])
        assert enrolled is not None
        return cls(
            enrolled, answer["linked"], _time(answer.get("linked_at")),
            answer["other_partners_cards"], answer.get("attached_to"), answer["attached_here"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LinkedCard:
    partner: str
    linking_key: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    alliance_key: str | None
    cards: list[LinkedCard]
    attached_to: str | None
    policy_version: str | None

    @classmethod
    def of(cls, answer: Any) -> Resolution:
        cards = [
            LinkedCard(c["partner"], c["linking_key"], datetime.fromisoformat(c["since"]))
            for c in answer["cards"]
        ]
        return cls(
            answer.get("alliance_key"), cards, answer.get("attached_to"),
            answer.get("policy_version"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CampaignReport:
    per_sg: dict[str, int]
    dropped: dict[str, int]

    @classmethod
    def of(cls, answer: Any) -> CampaignReport:
        return cls(dict(answer["per_sg"]), dict(answer["dropped"]))


@dataclass(frozen=True, slots=True)
class Verification:
    intact: bool
    summary: str
    entries: int
    tree_size: int
    checkpoints: int
    key: str

    @classmethod
    def of(cls, answer: Any) -> Verification:
        return cls(
            answer["intact"], answer["summary"], answer["entries"], answer["tree_size"],
            answer["checkpoints"], answer["key"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BlindKeys:
    """What a partner needs to blind for a domain: how the service normalises its identifiers,
    the public element of each version of its oblivious function (32 bytes), and the
    deployment's scheme (``oprf``: the blind pseudonyms are the domain's own, which card
    enrolment, links and exchanges take; ``hmac``: they are the partner's own)."""

    domain: str
    card_luhn: bool
    phone_region: str
    public: dict[int, bytes]
    scheme: str = "hmac"

    @classmethod
    def of(cls, answer: Any) -> BlindKeys:
        public = {int(k["version"]): unpadded_b64(k["public"]) for k in answer["keys"]}
        return cls(
            answer["domain"], bool(answer["card_luhn"]), answer["phone_region"], public,
            answer.get("scheme", "hmac"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BlindEvaluation:
    """The service's answer to a batch of blinded elements: the key version that evaluated
    them, the evaluated elements in order, and the one proof of them all."""

    domain: str
    version: int
    evaluated: list[bytes]
    proof: bytes

    @classmethod
    def of(cls, answer: Any) -> BlindEvaluation:
        evaluated = [unpadded_b64(text) for text in answer["evaluated"]]
        return cls(
            answer["domain"], int(answer["version"]), evaluated, unpadded_b64(answer["proof"])
        )


@dataclass(frozen=True, slots=True)
class BlindTranslation:
    """The service's re-keying of blind pseudonyms to the domain's active ``version``: the
    pseudonyms in order, and one proof per source version."""

    domain: str
    version: int
    pseudonyms: list[str]
    proofs: dict[int, bytes]

    @classmethod
    def of(cls, answer: Any) -> BlindTranslation:
        proofs = {int(p["version"]): unpadded_b64(p["proof"]) for p in answer.get("proofs", [])}
        return cls(
            answer["domain"], int(answer["version"]), list(answer["pseudonyms"]), proofs
        )


def unpadded_b64(text: str) -> bytes:
    """Bytes from unpadded base64url, as the service writes elements."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
