"""Files as they come: any of the four delimiters (found from the header unless named), UTF-8
with or without a byte-order mark, cp1252 and latin-1 on request, CRLF or LF. The same data
gives the same pseudonyms, byte for byte, as the UTF-8 comma file; a file that is not UTF-8
fails at once, naming the fix, and leaves no output."""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errors import InvalidFile, NotFound
from tests.conftest import ACCESS
from tiers import _csvio
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange
from tiers.files import ColumnSpec, tokenise_file
from tiers.inbox import delivery_file, list_inbox

COLUMNS = [ColumnSpec("card", "card"), ColumnSpec("email", "email")]
# Written in every encoding tried: latin-1 and cp1252 share these.
NAMES = st.text(alphabet="abcdeéèàçôÉ ;,|'-", min_size=1, max_size=12)
CARDS = st.integers(10_000_000, 99_999_999).map(str)
EMAILS = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.fr", fullmatch=True)
_runs = itertools.count()


@pytest.fixture
def casino(deployment: Deployment) -> Deployment:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    return deployment


def _file(rows: list[list[str]], delimiter: str, encoding: str, ending: str) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator=ending).writerows(
        [["card", "email", "name"], *rows]
    )
    return buffer.getvalue().encode(encoding)


def _tokenised(
    deployment: Deployment, tmp_path: Path, data: bytes, **options: object
) -> list[list[str]]:
    run = next(_runs)
    source, output = tmp_path / f"in-{run}.csv", tmp_path / f"out-{run}.csv"
    source.write_bytes(data)
    tokenise_file(
        deployment,
        access=ACCESS,
        source=source,
        output=output,
        domain="casino",
        columns=COLUMNS,
        keep=["name"],
        register=False,
        **options,  # type: ignore[arg-type]
    )
    text = output.read_text(encoding="utf-8")
    delimiter = _csvio.detect_delimiter(text.partition("\r\n")[0])
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(st.one_of(CARDS, EMAILS, NAMES), min_size=3, max_size=3), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"]),
    ending=st.sampled_from(["\n", "\r\n"]),
    named=st.booleans(),
)
def test_every_dialect_gives_the_pseudonyms_of_the_utf8_comma_file(
    casino: Deployment,
    tmp_path: Path,
    rows: list[list[str]],
    delimiter: str,
    encoding: str,
    ending: str,
    named: bool,
) -> None:
    rows = [[card, email, name] for card, email, name in rows] or [["10000001", "a@b.fr", "é"]]
    reference = _tokenised(casino, tmp_path, _file(rows, ",", "utf-8", "\n"))
    option = "utf-8" if encoding == "utf-8-sig" else encoding
    given_delimiter = {"named": delimiter, "found": None}["named" if named else "found"]
    data = _file(rows, delimiter, encoding, ending)
    assert _tokenised(casino, tmp_path, data, encoding=option, delimiter=given_delimiter) == (
        reference
    )


def test_a_tab_is_named_tab(casino: Deployment, tmp_path: Path) -> None:
    rows = [["10000001", "anne@example.fr", "Anne"]]
    reference = _tokenised(casino, tmp_path, _file(rows, ",", "utf-8", "\n"))
    data = _file(rows, "\t", "utf-8", "\n")
    assert _tokenised(casino, tmp_path, data, delimiter="tab") == reference


def test_a_windows_file_fails_at_once_naming_the_encoding_and_writes_nothing(
    casino: Deployment, tmp_path: Path
) -> None:
    """cp1252 read as UTF-8 used to lose most rows as bad_encoding and still write a partial
    output; now nothing is written and the error names the fix."""
    rows = [[str(10_000_000 + n), f"client{n}@example.fr", "Hélène Lefèvre"] for n in range(2000)]
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    source = tmp_path / "clients.csv"
    source.write_bytes(_file(rows, ";", "cp1252", "\r\n"))
    output = tmp_path / "out.csv"
    with pytest.raises(InvalidFile) as raised:
        tokenise_file(
            casino, access=ACCESS, source=source, output=output, domain="casino", columns=COLUMNS
        )
    assert raised.value.code == "not_utf8"
    assert "--encoding cp1252" in raised.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clients.csv"]
    # The same file with its encoding named: every row is accepted.
    report = tokenise_file(
        casino, access=ACCESS, source=source, output=output, domain="casino",
        columns=COLUMNS, keep=["name"], encoding="cp1252",
    )  # fmt: skip
    assert (report.rows_in, report.rows_out, report.rows_rejected) == (2000, 2000, 0)
    assert "Hélène Lefèvre" in output.read_text(encoding="utf-8")


def test_a_wrong_delimiter_is_named_in_the_error(casino: Deployment, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(_file([["10000001", "a@b.fr", "x"]], ";", "utf-8", "\n"))
    with pytest.raises(NotFound) as raised:
        tokenise_file(
            casino, access=ACCESS, source=source, output=tmp_path / "out.csv",
            domain="casino", columns=COLUMNS, delimiter=",",
        )  # fmt: skip
    assert raised.value.code == "unknown_column"
    assert "one column holding ';'" in raised.value.message


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("card,email", ","),
        ("card;email;nom", ";"),
        ("card\temail", "\t"),
        ("card|email", "|"),
        ('"a;b",c', ","),  # a delimiter inside a quoted name does not count
        ("card", ","),  # one column
        ("a;b,c;d", ";"),
    ],
)
def test_the_delimiter_is_the_one_the_header_uses_most(line: str, found: str) -> None:
    assert _csvio.detect_delimiter(line) == found


def test_an_exchange_in_a_spreadsheet_s_file_gives_the_same_delivery(
    alliance: Deployment, tmp_path: Path
) -> None:
    """The hub receives the same delivery from a comma UTF-8 file, a semicolon CRLF file with a
    byte-order mark, and a pipe-separated cp1252 one."""
    from tiers.cards import enrol_cards  # noqa: PLC0415

    enrol_cards(alliance, access=ACCESS, domain="casino", values=["10000001"])
    sent = {
        "utf-8": b"card,date,amount,store\n10000001,2026-11-02,12.50,C-042\n",
        "utf-8-sig": b"\xef\xbb\xbfcard;date;amount;store\r\n10000001;2026-11-02;12.50;C-042\r\n",
        "cp1252": "card|date|amount|store\n10000001|2026-11-02|12.50|C-042\n".encode("cp1252"),
    }
    for n, (encoding, data) in enumerate(sent.items()):
        source = tmp_path / f"exchange-{n}.csv"
        source.write_bytes(data)
        send_exchange(
            alliance, access=ACCESS, domain="casino", exchange_type="purchases", source=source,
            encoding="utf-8" if encoding == "utf-8-sig" else encoding,
        )  # fmt: skip
    texts = []
    for delivery in list_inbox(alliance, access=ACCESS, domain="hub"):
        with delivery_file(alliance, access=ACCESS, domain="hub", delivery_id=delivery.id) as f:
            texts.append(f.read().decode("utf-8"))
    assert len(texts) == 3 and texts[0] == texts[1] == texts[2]
    assert texts[0].splitlines()[1].startswith("hub.v1.")
