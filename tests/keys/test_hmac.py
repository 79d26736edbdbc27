from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import PreparedHmacSha256

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "rfc4231_hmac_sha256.json").read_text()
)["cases"]


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: f"rfc4231-{c['case']}")
def test_prepared_hmac_matches_rfc4231(case: dict[str, str]) -> None:
    mac = PreparedHmacSha256(bytes.fromhex(case["key"])).digest(bytes.fromhex(case["data"]))
    expected = case["hmac_sha256"]
    assert expected == mac.hex()[: len(expected)]


@given(key=st.binary(max_size=200), message=st.binary(max_size=300))
def test_prepared_hmac_equals_standard_library(key: bytes, message: bytes) -> None:
    assert hmac.new(key, message, hashlib.sha256).digest() == PreparedHmacSha256(key).digest(
        message
    )


@given(key=st.binary(min_size=1, max_size=64), first=st.binary(), second=st.binary())
def test_prepared_hmac_is_reusable_and_stateless(key: bytes, first: bytes, second: bytes) -> None:
    prepared = PreparedHmacSha256(key)
    a = prepared.digest(first)
    prepared.digest(second)
    assert a == prepared.digest(first)


def test_prepared_hmac_repr_hides_key() -> None:
    key = b"K" * 32
    assert "K" * 8 not in repr(PreparedHmacSha256(key))


@given(st.binary(max_size=100), st.lists(st.binary(max_size=200), max_size=20))
def test_digest_many_is_digest_of_each_message(key: bytes, messages: list[bytes]) -> None:
    prepared = PreparedHmacSha256(key)
    assert [prepared.digest(message) for message in messages] == prepared.digest_many(messages)
