"""The fast path (blocks tokenised by forked workers) writes exactly what the simple path writes:
same output and rejects, byte for byte, same counts, same error, whatever the block size and the
number of workers."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from errors import TiersError
from tests.conftest import ACCESS
from tiers import _fastpath
from tiers._csvio import FIELD_SIZE_LIMIT
from tiers._fastpath import BlockResult, BlockWork, RecordBlocks, in_order
from tiers._file_rows import plan_of
from tiers._subject_index import index_secret
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, tokenise_file
from tiers.tokenisation import Tokeniser

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


# Delimiters: the usual ones, and ones a token or a neutralised cell holds (their cells are
# quoted by csv.writer, so a block is written through it).
DELIMITERS = st.sampled_from([",", ";", "\t", "|", " ", "'", "-", ".", "a", "7"])


@st.composite
def safe_blocks(draw: st.DrawFn, delimiter: str = ",") -> bytes:
    """A block as RecordBlocks cuts them: whole lines with no quote, NUL or lone carriage
    return; sometimes blank lines, sometimes a byte that is not UTF-8."""
    cards = st.sampled_from(["10000001", "4970 1012 3456", "1234", ""])
    emails = st.sampled_from(
        ["anne.leroy@example.fr", "ANNE.Leroy@Example.FR ", "leo@web.fr", "no-at"]
    )
    fitting = st.tuples(cards, emails, CELLS).map(list)
    lines = []
    for _ in range(draw(st.integers(0, 40))):
        cells = draw(st.one_of(fitting, fitting, st.lists(CELLS, min_size=2, max_size=4)))
        lines.append(delimiter.join(draw(st.sampled_from([cells, cells, [], ["\udcff", *cells]]))))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return "".join(line + ending for line in lines).encode("utf-8", "surrogateescape")


@settings(max_examples=200)
@given(
    block_and_delimiter=DELIMITERS.flatmap(
        lambda delimiter: st.tuples(safe_blocks(delimiter), st.just(delimiter))
    ),
    before=st.integers(0, 10**6),
    register=st.booleans(),
    lines_at_once=st.sampled_from([1, 3, 2048]),
)
# A cell csv.writer quotes for holding the delimiter: a neutralised formula's "'", a token's "a".
@example(
    block_and_delimiter=(b"10000001'leo@web.fr'=SUM(A1)\n", "'"),
    before=0,
    register=False,
    lines_at_once=3,
)
@example(
    block_and_delimiter=(b"10000001aleo@web.fra-12.50\n", "a"),
    before=0,
    register=False,
    lines_at_once=3,
)
def test_a_block_read_by_column_gives_what_it_gives_read_by_row(
    casino: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    block_and_delimiter: tuple[bytes, str],
    before: int,
    register: bool,
    lines_at_once: int,
) -> None:
    """Output, rejects, the registrations and the subject index's references in their order,
    for any block read in slices of
    any size and any delimiter (what the file test above cannot see: it does not register,
    and its files are comma-separated). The row route writes through csv.writer."""
    block, delimiter = block_and_delimiter
    monkeypatch.setattr(_fastpath, "COLUMN_SLICE", lines_at_once)
    header = ["card", "email", "amount"]
    plan = plan_of(header, COLUMNS, ["amount"])
    with casino.transaction() as connection:
        tokeniser = Tokeniser.open(casino, connection, "casino")
        secret = index_secret(casino.audit_keyring(connection).active)
    work = BlockWork(plan, len(header), tokeniser, delimiter, register, secret)
    by_row = work.by_row(block, before, BlockResult(bytes_in=len(block)))
    by_column = work(block, before)
    assert by_row == by_column  # the references included: sorted, whatever the slices
    assert by_column.refs is not None and [] == by_column.bases
    assert 8 * len(COLUMNS) * by_column.rows_out == len(by_column.refs.refs)


def test_a_field_over_the_size_limit_fails_the_file_on_both_paths(
    casino: Deployment, tmp_path: Path
) -> None:
    """A line longer than the field size limit, short enough to stay in a fast block, is read
    by the CSV parser there too, which refuses it as the serial path does."""
    data = b"card,email,amount\n10000001,anne@example.fr," + b"1" * (FIELD_SIZE_LIMIT + 10) + b"\n"
    simple = outcome(casino, tmp_path, data, block_bytes=0)
    fast = outcome(casino, tmp_path, data, block_bytes=FIELD_SIZE_LIMIT, workers=1)
    assert simple == fast
    assert isinstance(simple, tuple) and simple[:2] == ("InvalidFile", "bad_csv")
