"""Hostile CSV input for the file and exchange readers: no crash, a clear error or per-row
rejects, and never a partial output (hypothesis generates the files)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errors import TiersError
from tests.conftest import ACCESS
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange
from tiers.files import ColumnSpec, tokenise_file
from tiers.inbox import list_inbox

# CI runs a short budget; `make fuzz` a larger one (TIERS_FUZZ_EXAMPLES).
EXAMPLES = int(os.environ.get("TIERS_FUZZ_EXAMPLES", "40"))
HOSTILE = st.sampled_from(
    [
        b"\x00",
        b"\xff\xfe",
        b"\xef\xbb\xbf",
        b'"',
        b'""',
        b"\r\n",
        b"\r",
        b"\n",
        b",",
        b";",
        b"\x1b[31m",
        b"=cmd|' /C calc'!A0",
        b"x" * 70_000,
        b"\xc3\x28",
        b"12345678",
        b"card",
        b"a@b.fr",
        b"2026-11-02",
        b"9.90",
        b"\xe2\x80\xae",
    ]
)
FILES = st.lists(st.one_of(HOSTILE, st.binary(max_size=20)), max_size=40).map(b"".join)


@pytest.fixture
def casino(deployment: Deployment) -> Deployment:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    add_domain(deployment, access=ACCESS, name="hub", role="hub")
    return deployment


@settings(max_examples=EXAMPLES)
@given(body=FILES)
def test_tokenising_hostile_bytes_never_crashes_nor_leaves_partial_output(
    casino: Deployment, tmp_path_factory: pytest.TempPathFactory, body: bytes
) -> None:
    directory = tmp_path_factory.mktemp("hostile")
    source = directory / "in.csv"
    source.write_bytes(b"card,note\r\n" + body)
    out = directory / "out.csv"
    try:
        report = tokenise_file(
            casino,
            access=ACCESS,
            source=source,
            output=out,
            domain="casino",
            columns=[ColumnSpec("card", "card")],
            keep=["note"],
            register=False,
        )
    except TiersError as error:  # a clear, coded refusal of the whole file: nothing written
        assert error.code and not out.exists()
    else:
        assert out.exists()
        assert report.rows_in == report.rows_out + report.rows_rejected
    assert [] == [p.name for p in Path(directory).iterdir() if p.name.endswith(".part")]


@settings(max_examples=EXAMPLES)
@given(body=FILES)
def test_exchanging_hostile_bytes_never_crashes_nor_delivers_a_partial_file(
    casino: Deployment, body: bytes
) -> None:
    before = {d.id for d in list_inbox(casino, access=ACCESS, domain="hub")}
    try:
        report = send_exchange(
            casino,
            access=ACCESS,
            domain="casino",
            exchange_type="purchases",
            source=io.BytesIO(b"card,date,amount\n" + body),
        )
    except TiersError as error:
        assert error.code
        assert before == {d.id for d in list_inbox(casino, access=ACCESS, domain="hub")}
    else:
        new = [d for d in list_inbox(casino, access=ACCESS, domain="hub") if d.id not in before]
        assert 1 == len(new)
        assert report.rows_out == new[0].rows
