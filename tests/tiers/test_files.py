from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errors import InvalidFile, InvalidIdentifier, InvalidRequest, NotFound
from tests.conftest import ACCESS, Database, assert_absent
from tiers import _csvio
from tiers._file_rows import neutralise_formula
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, parse_column_spec, tokenise_file
from tiers.tokenisation import pseudonymise_values

CARD = ColumnSpec("card", "card")
EMAIL = ColumnSpec("email", "email")
CLEAR = [
    "4970 1012 3456",
    "497010123457",
    "anne.leroy@example.fr",
    "marc.petit@example.fr",
    "Fatima Benali",
]
GOOD = (
    "card,email,name,amount\n"
    "4970 1012 3456,anne.leroy@example.fr,Fatima Benali,12.50\n"
    "497010123457,marc.petit@example.fr,Fatima Benali,3\n"
)


@pytest.fixture
def casino(deployment: Deployment) -> Deployment:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    return deployment


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def run(dep: Deployment, source: Path, out: Path, **options: object) -> object:
    kwargs: dict[str, object] = {"columns": [CARD, EMAIL], "keep": ["amount"], "domain": "casino"}
    kwargs.update(options)
    return tokenise_file(dep, source=source, output=out, access=ACCESS, **kwargs)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_identifier_columns_become_pseudonyms_and_only_kept_columns_pass(
    casino: Deployment, database: Database, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(GOOD, encoding="utf-8")
    out = tmp_path / "out.csv"
    report = run(casino, source, out)
    rows = read_csv(out)
    assert rows[0] == ["card", "email", "amount"]
    cards = pseudonymise_values(
        casino,
        domain="casino",
        kind="card",
        values=["4970 1012 3456", "497010123457"],
        access=ACCESS,
    )
    emails = pseudonymise_values(
        casino,
        domain="casino",
        kind="email",
        values=["anne.leroy@example.fr", "marc.petit@example.fr"],
        access=ACCESS,
    )
    assert [[cards[0], emails[0], "12.50"], [cards[1], emails[1], "3"]] == rows[1:]
    assert read_csv(tmp_path / "out.csv.rejects.csv") == [["line", "column", "code"]]
    assert (
        report.rows_in,
        report.rows_out,
        report.rows_rejected,
        report.registered,
    ) == (2, 2, 0, 4)  # type: ignore[attr-defined]
    everything = database.stored_bytes() + out.read_bytes()
    assert_absent(everything, CLEAR, "the database or the output")


def test_bad_rows_are_reported_by_line_and_good_rows_are_all_written(
    casino: Deployment, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray undecodable byte past the block checked at the start rejects its row only."""
    monkeypatch.setattr(_csvio, "CHECKED_BYTES", 64)  # the header and the first lines
    source = tmp_path / "in.csv"
    source.write_bytes(
        b"\xef\xbb\xbfcard,email,name,amount\r\n"  # line 1, with a byte-order mark
        b"4970 1012 3456,anne.leroy@example.fr,x,1\r\n"  # line 2 ok
        b"12,anne.leroy@example.fr,x,2\n"  # line 3 card too short
        b"497010123457,not-an-email,x,3\n"  # line 4 email bad
        b'497010123457,"marc.petit@example.fr","multi\nline",4\n'  # lines 5-6 ok
        b"1,2\n"  # line 7 ragged
        b"\n"  # line 8 blank: not a record
        b"49701012345\xff,marc.petit@example.fr,x,5\n"  # line 9 undecodable card
        b"497010123458,marc.petit@example.fr,x,\xe96\n"  # line 10 undecodable amount
        b"EVIL-CARD,bad,x,7\n"  # line 11 two bad columns
        b"497010123459,zoe@example.fr,x,8"  # line 12 ok, no final newline
    )
    out = tmp_path / "out.csv"
    rejects = tmp_path / "rejects.csv"
    report = run(casino, source, out, rejects=rejects)
    assert read_csv(rejects) == [
        ["line", "column", "code"],
        ["3", "card", "bad_length"],
        ["4", "email", "bad_format"],
        ["7", "", "field_count"],
        ["9", "card", "bad_encoding"],
        ["10", "amount", "bad_encoding"],
        ["11", "card", "bad_character"],
        ["11", "email", "bad_format"],
    ]
    rows = read_csv(out)
    assert [row[2] for row in rows[1:]] == ["1", "4", "8"]
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (9, 3, 6)  # type: ignore[attr-defined]
    assert_absent(
        rejects.read_bytes() + out.read_bytes() + database.stored_bytes(),
        ["4970 1012 3456", "497010123457", "not-an-email", "EVIL-CARD", "49701012345"],
        "outputs or database",
    )


@pytest.mark.parametrize(
    ("content", "error", "code"),
    [
        (b"", InvalidFile, "empty_file"),
        (b"card,email,amount\n", InvalidFile, "no_rows"),
        (b"card,email,amount\n\n\n", InvalidFile, "no_rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", InvalidFile, "not_csv"),
        (b"card,email,card,amount\n1,2,3,4\n", InvalidFile, "duplicate_column"),
        (b"card,mail,amount\n12345678,a@b.fr,1\n", NotFound, "unknown_column"),
        (b"card,email\n12345678,a@b.fr\n", NotFound, "unknown_column"),
    ],
)
def test_files_that_cannot_be_processed_change_nothing(
    casino: Deployment, database: Database, tmp_path: Path, content: bytes, error: type, code: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    before = database.rows()
    with pytest.raises(error) as caught:
        run(casino, source, tmp_path / "out.csv")
    assert code == caught.value.code
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "out.csv.rejects.csv").exists()
    assert leftovers(tmp_path) == []
    assert before == database.rows()


@pytest.mark.parametrize(
    ("options", "error", "code"),
    [
        ({"domain": "nowhere"}, NotFound, "unknown_domain"),
        ({"columns": []}, InvalidRequest, "no_columns"),
        ({"columns": [CARD, CARD]}, InvalidRequest, "column_named_twice"),
        ({"keep": ["card"]}, InvalidRequest, "column_named_twice"),
        ({"delimiter": ";;"}, InvalidRequest, "bad_delimiter"),
    ],
)
def test_bad_options_change_nothing(
    casino: Deployment,
    database: Database,
    tmp_path: Path,
    options: dict[str, object],
    error: type,
    code: str,
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(GOOD)
    before = database.rows()
    with pytest.raises(error) as caught:
        run(casino, source, tmp_path / "out.csv", **options)
    assert code == caught.value.code
    assert not (tmp_path / "out.csv").exists()
    assert leftovers(tmp_path) == []
    assert before == database.rows()


def test_an_interrupted_run_leaves_no_output_and_registers_nothing(
    casino: Deployment, database: Database, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    with open(source, "w", encoding="utf-8") as handle:
        handle.write("card,email,amount\n")
        for i in range(100_000):  # several blocks: progress is reported after each
            handle.write(f"{10_000_000 + i},user{i}@example.fr,{i}\n")
    before = database.rows()

    def interrupt(done: int, total: int) -> None:
        if done < total:
            raise KeyboardInterrupt

    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        run(casino, source, out, progress=interrupt)
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert before == database.rows()


def test_an_existing_output_is_untouched_by_a_failed_run(
    casino: Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("previous complete output\n")
    source = tmp_path / "in.csv"
    source.write_text("card,email,amount\n")
    with pytest.raises(InvalidFile):
        run(casino, source, out)
    assert out.read_text() == "previous complete output\n"


def test_output_may_not_overwrite_the_input(casino: Deployment, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(GOOD)
    with pytest.raises(InvalidRequest):
        run(casino, source, source)
    assert source.read_text() == GOOD


def test_registration_can_be_skipped(
    casino: Deployment, database: Database, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(GOOD)
    before = database.rows()
    report = run(casino, source, tmp_path / "out.csv", register=False)
    assert report.registered == 0  # type: ignore[attr-defined]
    assert before["subjects"] == database.rows()["subjects"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("card=card", CARD), ("e-mail col=email", ColumnSpec("e-mail col", "email"))],
)
def test_column_specs_parse(text: str, expected: ColumnSpec) -> None:
    assert expected == parse_column_spec(text)


@pytest.mark.parametrize("text", ["card", "=card", "card=", "card=iris"])
def test_bad_column_specs_are_refused(text: str) -> None:
    with pytest.raises((InvalidRequest, InvalidIdentifier)):
        parse_column_spec(text)


rows_strategy = st.lists(
    st.tuples(
        st.one_of(st.from_regex(r"[0-9]{8,19}", fullmatch=True), st.text(max_size=6)),
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
            max_size=8,
        ),
    ),
    min_size=1,
    max_size=40,
)


@given(rows=rows_strategy)
def test_every_row_is_either_written_in_order_or_rejected(
    casino: Deployment, tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]
) -> None:
    directory = tmp_path_factory.mktemp("prop")
    source = directory / "in.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["card", "note"])
        writer.writerows(rows)
    out = directory / "out.csv"
    report = tokenise_file(
        casino,
        source=source,
        output=out,
        domain="casino",
        columns=[CARD],
        keep=["note"],
        register=False,
        access=ACCESS,
    )
    expected = pseudonymise_values(
        casino,
        domain="casino",
        kind="card",
        values=[card for card, _ in rows],
        register=False,
        access=ACCESS,
    )
    good = [
        [p, neutralise_formula(note)]
        for p, (_, note) in zip(expected, rows, strict=True)
        if isinstance(p, str)
    ]
    assert [["card", "note"], *good] == read_csv(out)
    rejected_lines = {int(r[0]) for r in read_csv(out.with_name("out.csv.rejects.csv"))[1:]}
    assert len(rows) - len(good) == len(rejected_lines) == report.rows_rejected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("-12.50", "-12.50"),
        ("+33", "+33"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_kept_cells_cannot_run_as_spreadsheet_formulas(cell: str, expected: str) -> None:
    assert expected == neutralise_formula(cell)


def test_formula_cells_are_neutralised_in_the_output(casino: Deployment, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("card,note\n12345678,\"=cmd|' /C calc'!A0\"\n12345679,-4.5\n")
    run(casino, source, tmp_path / "out.csv", columns=[CARD], keep=["note"])
    assert ["'=cmd|' /C calc'!A0", "-4.5"] == [r[1] for r in read_csv(tmp_path / "out.csv")[1:]]
