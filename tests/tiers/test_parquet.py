"""Parquet in and out: a Parquet file gives the pseudonyms and the rejects of its CSV export,
byte for byte; an exchange may be sent as Parquet; a file that is not Parquet leaves nothing."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errors import InvalidFile, NotFound
from tests.conftest import ACCESS, Cli
from tiers.admin import add_domain
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange
from tiers.files import ColumnSpec, tokenise_file
from tiers.inbox import delivery_file, list_inbox

COLUMNS = [ColumnSpec("card", "card"), ColumnSpec("email", "email")]
_runs = itertools.count()


@pytest.fixture
def casino(deployment: Deployment) -> Deployment:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    return deployment


def _csv_export(table: pa.Table) -> bytes:
    """The table as a CSV file: each cell's text, an empty cell for a null."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    columns = [pc.cast(column, pa.string()).to_pylist() for column in table.columns]
    writer.writerows([["" if c is None else c for c in row] for row in zip(*columns, strict=True)])
    return buffer.getvalue().encode("utf-8")


def _tokenised(
    deployment: Deployment, folder: Path, name: str, data: bytes
) -> tuple[list[list[str]], str]:
    """The output's rows of text, and the rejects file."""
    run = next(_runs)
    source, output = folder / f"{run}-{name}", folder / f"{run}-out-{name}"
    source.write_bytes(data)
    tokenise_file(
        deployment, access=ACCESS, source=source, output=output, domain="casino",
        columns=COLUMNS, keep=["amount", "day"], register=False,
    )  # fmt: skip
    rejects = output.with_name(output.name + ".rejects.csv").read_text()
    if name.endswith(".parquet"):
        table = pq.read_table(output)
        assert all(field.type == pa.string() for field in table.schema)
        rows = [
            table.column_names,
            *(list(r) for r in zip(*table.to_pydict().values(), strict=True)),
        ]
        return rows, rejects
    return list(csv.reader(io.StringIO(output.read_text(), newline=""))), rejects


def _parquet(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


ROWS = st.lists(
    st.tuples(
        st.one_of(st.integers(10_000_000, 99_999_999), st.integers(1, 999), st.none()),
        st.one_of(st.from_regex(r"[a-z]{1,8}@[a-z]{1,6}\.fr", fullmatch=True), st.just("x")),
        st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False),
        st.dates(min_value=datetime.date(2020, 1, 1), max_value=datetime.date(2030, 1, 1)),
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ROWS, row_group_size=st.sampled_from([None, 1, 7]))
def test_a_parquet_file_gives_what_its_csv_export_gives(
    casino: Deployment, tmp_path: Path, rows: list[tuple[object, ...]], row_group_size: int | None
) -> None:
    table = pa.table(
        {
            "card": pa.array([r[0] for r in rows], pa.int64()),
            "email": pa.array([r[1] for r in rows], pa.string()),
            "amount": pa.array([r[2] for r in rows], pa.decimal128(7, 2)),
            "day": pa.array([r[3] for r in rows], pa.date32()),
        }
    )
    from_csv = _tokenised(casino, tmp_path, "in.csv", _csv_export(table))
    from_parquet = _tokenised(casino, tmp_path, "in.parquet", _parquet(table, row_group_size))
    assert from_parquet == from_csv


def test_a_file_that_is_not_parquet_leaves_nothing(casino: Deployment, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    source = folder / "customers.parquet"
    source.write_bytes(b"card,email\n10000001,a@b.fr\n")
    with pytest.raises(InvalidFile) as refused:
        tokenise_file(
            casino, access=ACCESS, source=source, output=folder / "out.parquet",
            domain="casino", columns=COLUMNS,
        )  # fmt: skip
    assert refused.value.code == "not_parquet"
    assert [p.name for p in folder.iterdir()] == ["customers.parquet"]
    with pytest.raises(NotFound) as missing:
        tokenise_file(
            casino, access=ACCESS, source=folder / "none.parquet", output=folder / "o.parquet",
            domain="casino", columns=COLUMNS,
        )  # fmt: skip
    assert missing.value.code == "no_such_file"
    # Named as CSV, the same bytes are read as CSV.
    report = tokenise_file(
        casino, access=ACCESS, source=source, output=folder / "out.csv", domain="casino",
        columns=COLUMNS, file_format="csv",
    )  # fmt: skip
    assert report.rows_out == 1


def test_an_exchange_sent_as_parquet_gives_the_csv_s_delivery(
    alliance: Deployment, tmp_path: Path
) -> None:
    enrol_cards(alliance, access=ACCESS, domain="casino", values=["10000001"])
    table = pa.table(
        {
            "card": pa.array([10000001, 10000001], pa.int64()),
            "date": pa.array([datetime.date(2026, 11, 2), datetime.date(2026, 11, 30)]),
            "amount": pa.array([decimal.Decimal("12.50"), decimal.Decimal("3.00")]),
            "store": pa.array(["C-042", "C-042"]),
        }
    )
    sources = {"month.csv": _csv_export(table), "month.parquet": _parquet(table)}
    for name, data in sources.items():
        (tmp_path / name).write_bytes(data)
        send_exchange(
            alliance, access=ACCESS, domain="casino", exchange_type="purchases",
            source=tmp_path / name,
        )  # fmt: skip
    texts = []
    for delivery in list_inbox(alliance, access=ACCESS, domain="hub"):
        with delivery_file(alliance, access=ACCESS, domain="hub", delivery_id=delivery.id) as f:
            texts.append(f.read())
    assert len(texts) == 2 and texts[0] == texts[1]
    assert texts[0].count(b"\n") == 3  # the header and both rows


def test_the_command_line_chooses_by_extension(cli: Cli, tmp_path: Path) -> None:
    cli.ok("init")
    cli.ok("domain", "add", "casino", "--role", "partner")
    # enough rows for the progress to be reported (every 8,192 rows)
    cards = [str(10_000_000 + n) for n in range(9000)]
    table = pa.table({"card": ["10000001", "bad", *cards], "name": ["Hélène", "x"] * 4501})
    source = tmp_path / "in.parquet"
    source.write_bytes(_parquet(table))
    result = cli(
        "tokenise-file",
        str(source),
        "-o",
        str(tmp_path / "out.parquet"),
        "--domain",
        "casino",
        "--column",
        "card=card",
        "--keep",
        "name",
    )
    assert result.exit_code == 2, result.stderr  # one row rejected
    out = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert out["name"][0] == "Hélène" and out["card"][0].startswith("casino.v1.")
    assert len(out["card"]) == 9001
    assert (tmp_path / "out.parquet.rejects.csv").read_text().splitlines()[
        1
    ] == "3,card,bad_character"
