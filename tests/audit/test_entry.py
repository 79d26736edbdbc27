from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.entry import GENESIS, AuditEntry, Counts, parse_entry
from errors import AuditIntegrityError

T = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)


def test_canonical_serialisation_must_never_change() -> None:
    """Pinned bytes: changing the format makes every stored log unverifiable."""
    entry = AuditEntry(
        seq=7,
        time=T,
        actor="casino-batch",
        role="partner",
        action="pseudonymise",
        purpose="campagne\nété\x1b[31m",
        outcome="ok",
        request_id="r-1",
        prev=GENESIS,
        domains=("casino",),
        counts=Counts(3, 2, 1),
        code=None,
        subject="audit.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        detail={"version": 2},
    )
    assert (
        b'{"action":"pseudonymise","actor":"casino-batch","code":null,'
        b'"counts":{"in":3,"out":2,"rejected":1},"detail":{"version":2},"domains":["casino"],'
        b'"outcome":"ok","prev":"0000000000000000000000000000000000000000000000000000000000000000",'
        b'"purpose":"campagne\\n\\u00e9t\\u00e9\\u001b[31m","request_id":"r-1","role":"partner",'
        b'"seq":7,"subject":"audit.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",'
        b'"time":"2026-11-23T12:00:00.123456Z","v":1}'
    ) == entry.canonical()


texts = st.text(max_size=30)


@given(
    seq=st.integers(min_value=0, max_value=10**12),
    actor=texts,
    role=texts,
    action=texts,
    purpose=texts,
    request_id=texts,
    outcome=st.sampled_from(["ok", "denied", "error"]),
    domains=st.lists(texts, max_size=3),
    counts=st.tuples(*[st.integers(min_value=0, max_value=10**9)] * 3),
    code=st.none() | texts,
    subject=st.none() | texts,
    micro=st.integers(min_value=0, max_value=999_999),
)
def test_canonical_bytes_parse_back_to_the_same_entry(
    seq: int,
    actor: str,
    role: str,
    action: str,
    purpose: str,
    request_id: str,
    outcome: str,
    domains: list[str],
    counts: tuple[int, int, int],
    code: str | None,
    subject: str | None,
    micro: int,
) -> None:
    entry = AuditEntry(
        seq=seq,
        time=T.replace(microsecond=micro),
        actor=actor,
        role=role,
        action=action,
        purpose=purpose,
        outcome=outcome,  # type: ignore[arg-type]
        request_id=request_id,
        prev="ab" * 32,
        domains=tuple(domains),
        counts=Counts(*counts),
        code=code,
        subject=subject,
    )
    data = entry.canonical()
    assert b"\n" not in data and b"\x1b" not in data
    assert entry == parse_entry(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"{}", b"not json", b'{"v":2}', b'{"v": 1}', "é".encode()],
)
def test_non_canonical_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(AuditIntegrityError):
        parse_entry(data)


def test_reformatted_json_is_refused_even_with_the_same_content() -> None:
    entry = AuditEntry(
        seq=0,
        time=T,
        actor="a",
        role="r",
        action="x",
        purpose="p",
        outcome="ok",
        request_id="q",
        prev=GENESIS,
    )
    spaced = entry.canonical().replace(b",", b", ")
    with pytest.raises(AuditIntegrityError):
        parse_entry(spaced)
