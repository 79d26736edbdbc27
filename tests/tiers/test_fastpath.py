"""The fast path (blocks tokenised by forked workers) writes exactly what the simple path writes:
same output and rejects, byte for byte, same counts, same error, whatever the block size and the
number of workers."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ACCESS
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.errors import TiersError
from tiers.fastpath import RecordBlocks, in_order
from tiers.files import ColumnSpec, tokenise_file

COLUMNS = [ColumnSpec("card", "card"), ColumnSpec("email", "email")]
_runs = itertools.count()

# Pieces of rows: good and bad identifiers, and the bytes that end the fast part.
CELLS = st.sampled_from(
    [
        "10000001",
        "4970 1012 3456",
        "1234",
        "anne.leroy@example.fr",
        "ANNE.Leroy@Example.FR ",
        "not-an-email",
        "",
        "=SUM(A1)",
        "-12.50",
        "café",
    ]
)
RARE = st.sampled_from(['"', '"a,b"', "\x00", "\r", "x" * 3000, "\udcff"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    lines = ["card,email,amount"]
    for _ in range(draw(st.integers(0, 60))):
        cells = draw(st.lists(CELLS, min_size=2, max_size=4))
        if draw(st.integers(0, 19)) == 0:
            cells[draw(st.integers(0, len(cells) - 1))] = draw(RARE)
        lines.append(",".join(cells))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + draw(st.sampled_from(["", ending, ending + ending]))
    data = text.encode("utf-8", "surrogateescape")
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + data


def outcome(deployment: Deployment, tmp: Path, data: bytes, **options: int) -> object:
    run = next(_runs)
    source, output = tmp / f"in{run}.csv", tmp / f"out{run}.csv"
    source.write_bytes(data)
    try:
        report = tokenise_file(
            deployment,
            access=ACCESS,
            source=source,
            output=output,
            domain="casino",
            columns=COLUMNS,
            keep=["amount"],
            register=False,
            **options,  # type: ignore[arg-type]
        )
    except TiersError as error:
        return (type(error).__name__, error.code, error.message)
    rejects = Path(report.rejects)
    result = (
        output.read_bytes(),
        rejects.read_bytes(),
        (report.rows_in, report.rows_out, report.rows_rejected, report.first_rejects),
    )
    output.unlink()
    rejects.unlink()
    return result


@pytest.fixture
def casino(deployment: Deployment) -> Deployment:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    return deployment


@settings(max_examples=60)
@given(data=csv_files(), block=st.integers(1, 400), workers=st.sampled_from([1, 2]))
def test_the_fast_path_writes_what_the_simple_path_writes(
    casino: Deployment, tmp_path: Path, data: bytes, block: int, workers: int
) -> None:
    simple = outcome(casino, tmp_path, data, block_bytes=0)
    fast = outcome(casino, tmp_path, data, block_bytes=block, workers=workers)
    assert simple == fast


@given(data=csv_files(), block=st.integers(1, 400))
def test_blocks_and_rest_put_back_together_are_the_file(data: bytes, block: int) -> None:
    blocks = RecordBlocks(io.BytesIO(data), block)
    header = blocks.header()
    pieces = [header or b""]
    lines = 1 if header is not None else 0
    for before, piece in blocks:
        assert lines == before  # each block knows its first line number
        assert piece.endswith(b"\n") and b'"' not in piece and b"\x00" not in piece
        lines += piece.count(b"\n")
        pieces.append(piece)
    pieces.append(blocks.rest().read())
    assert data == b"".join(pieces)


def square(block: bytes, before: int) -> tuple[int, int]:
    return before, len(block) ** 2


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_back_in_block_order(workers: int) -> None:
    blocks = [(n, b"x" * (n % 7)) for n in range(50)]
    assert [(n, (n % 7) ** 2) for n in range(50)] == list(in_order(square, iter(blocks), workers))
