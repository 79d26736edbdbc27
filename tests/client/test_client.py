"""tiers-client against a real ``tiers serve``: each role's daily calls, typed answers, one
exception per code, retries only where sending twice is harmless, files streamed both ways."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiers_client import AsyncClient, Client, errors
from tiers_client.models import Delivery, Resolution, ValueRefused

from tests.client.conftest import Service, serve
from tests.conftest import Database, run_coroutine
from tests.hardening.service import STARTED

pytestmark = pytest.mark.slow  # each test starts a real server

PURPOSE = "client tests"
CARDS = ("10000001", "70000001")


def _client(service: Service, name: str, **options: object) -> Client:
    return Client(service.url, service.keys[name], purpose=PURPOSE, **options)  # type: ignore[arg-type]


def _linked(service: Service) -> str:
    """A customer with a card at casino and at sncf; casino's pseudonym of its card."""
    with _client(service, "casino-app") as casino, _client(service, "sncf-app") as sncf:
        [card] = casino.enrol_cards([CARDS[0]])
        sncf.enrol_cards([CARDS[1]])
        outcome = casino.associate(CARDS[0], "sncf", CARDS[1])
        assert (outcome.rule, outcome.attached_here) == ("attach.first_enrolment", True)
    assert isinstance(card, str)
    return card


def test_a_partner_s_day(service: Service, tmp_path: Path) -> None:
    with _client(service, "casino-app") as casino:
        me = casino.whoami()
        assert (me.name, me.role, me.domain) == ("casino-app", "partner", "casino")
        results = casino.pseudonymise("card", ["4970 1012 3456", "x"])
        assert isinstance(results[0], str) and results[0].startswith("casino.v1.")
        assert results[1] == ValueRefused(1, "bad_character")
        source = tmp_path / "customers.csv"
        source.write_text("card;email\r\n4970 1012 3456;anne@example.fr\r\nbad;x\r\n")
        seen: list[tuple[int, int | None]] = []
        result = casino.tokenise_file(
            source, tmp_path / "out.csv", columns=["card=card", "email=email"],
            progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
        assert (result.job.state, result.job.rows_out, result.job.rows_rejected) == ("done", 1, 1)
        rows = list(
            csv.reader(io.StringIO(Path(result.output).read_text(), newline=""), delimiter=";")
        )
        assert rows[1][0] == results[0]  # the same pseudonym, whichever way it was asked
        assert Path(result.rejects).read_text().splitlines()[1:] == [
            "3,card,bad_character",
            "3,email,bad_format",
        ]
        assert seen and seen[-1][0] == source.stat().st_size
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_exchanges_inboxes_and_the_hub(service: Service, tmp_path: Path) -> None:
    card = _linked(service)
    month = tmp_path / "november.csv"
    month.write_text(
        "card,date,amount,store\n10000001,2026-11-02,12.50,C-042\n10000001,2026-11-30,oops,C-042\n"
    )
    with _client(service, "casino-app") as casino, _client(service, "hub-app") as hub:
        report = casino.send_exchange(month, "purchases")
        assert (report.rows_out, report.rows_rejected) == (1, 1)
        assert report.first_rejects[0].code == "bad_decimal"
        state = casino.card_state(card)
        assert (state.linked, state.other_partners_cards, state.attached_to) == (True, 1, "casino")
        [rejects] = casino.inbox()
        assert (rejects.kind, rejects.rows) == ("rejects", 1)
        [delivery] = [d for d in hub.inbox() if d.kind == "exchange"]
        assert isinstance(delivery, Delivery) and delivery.sender == "casino"
        target = tmp_path / "hub.csv"
        hub.download_delivery(delivery.id, target)
        key = target.read_text().splitlines()[1].split(",")[0]
        [resolution] = hub.resolve([key])
        assert isinstance(resolution, Resolution) and resolution.attached_to == "casino"
        assert sorted(c.partner for c in resolution.cards) == ["casino", "sncf"]
        campaign = hub.send_campaign("xmas", [key])
        assert campaign.per_sg == {"casino": 1}
        hub.ack(delivery.id)
        assert delivery.id not in {d.id for d in hub.inbox()}


def test_errors_are_exceptions_of_their_code(service: Service) -> None:
    with _client(service, "casino-app") as casino:
        with pytest.raises(errors.UnknownCardError) as unknown:
            casino.card_state("casino.v1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        assert isinstance(unknown.value, errors.NotFound) and unknown.value.status == 404
        with pytest.raises(errors.PseudonymRequiredError):
            casino.card_state("10000001")
    with Client(service.url, service.keys["casino-app"]) as no_purpose:
        with pytest.raises(errors.PurposeRequired):
            no_purpose.pseudonymise("card", ["10000001"])
        assert no_purpose.pseudonymise("card", ["10000001"], purpose="a stated one")[0]
    stranger = Client(service.url, "tiers_bad.key", purpose=PURPOSE)
    with stranger, pytest.raises(errors.Unauthorised):
        stranger.whoami()
    with _client(service, "dpo") as dpo:
        entries = dpo.audit_entries(actor="casino-app")
        assert {"card_show"} <= {e["action"] for e in entries}
        # pages of two, followed to the end: the same entries as one page
        paged = dpo.audit_entries(actor="casino-app", limit=2)
        assert [e["seq"] for e in entries] == [e["seq"] for e in paged]
        assert len(paged) > 2
        assert dpo.audit_verify().intact
        with pytest.raises(errors.Forbidden):
            dpo.pseudonymise("card", ["10000001"])
    assert "tiers_" not in repr(Client(service.url, service.keys["dpo"]))  # the key is never shown


@pytest.fixture
def strict(database: Database) -> Iterator[Service]:
    """A service that lets a client send one request a second."""
    yield serve(database, TIERS_RATE_LIMIT_PER_SECOND="1", TIERS_RATE_LIMIT_BURST="1")
    while STARTED:
        STARTED.pop().kill()


def test_only_calls_that_may_be_sent_twice_are_retried(strict: Service) -> None:
    with _client(strict, "casino-app", backoff=0.2) as casino:
        casino.whoami()
        assert casino.whoami().name == "casino-app"  # 429, waited Retry-After, sent again
        casino.enrol_cards([CARDS[0]])
    with _client(strict, "sncf-app", retries=0) as sncf:
        sncf.whoami()
        with pytest.raises(errors.RateLimited) as limited:
            sncf.whoami()
        assert limited.value.retry_after is not None and limited.value.retry_after > 0
    with _client(strict, "casino-app") as casino:
        casino.whoami()
        with pytest.raises(errors.RateLimited):  # may change links: never sent twice
            casino.associate(CARDS[0], "sncf", CARDS[1])


def test_the_async_client_makes_the_same_calls(service: Service, tmp_path: Path) -> None:
    async def day() -> None:
        key = service.keys["casino-app"]
        async with AsyncClient(service.url, key, purpose=PURPOSE) as casino:
            assert (await casino.whoami()).domain == "casino"
            [pseudonym] = await casino.pseudonymise("card", [CARDS[0]])
            source = tmp_path / "in.csv"
            source.write_text(f"card\n{CARDS[0]}\n")
            result = await casino.tokenise_file(source, tmp_path / "out.csv", columns=["card=card"])
            assert Path(result.output).read_text().splitlines()[1] == pseudonym
            assert await casino.inbox() == []
        async with AsyncClient(service.url, service.keys["dpo"], purpose=PURPOSE) as dpo:
            whole = await dpo.audit_entries(actor="casino-app")
            paged = await dpo.audit_entries(actor="casino-app", limit=1)
            assert [e["seq"] for e in whole] == [e["seq"] for e in paged] and len(paged) > 1

    run_coroutine(day())


def test_the_command_line(service: Service, tmp_path: Path) -> None:
    env = {
        "TIERS_URL": service.url,
        "TIERS_API_KEY": service.keys["casino-app"],
        "TIERS_PURPOSE": PURPOSE,
        "PATH": "",
    }
    command = [str(Path(sys.executable).with_name("tiers-client"))]
    source = tmp_path / "in.csv"
    source.write_bytes("card;name\r\n10000001;Hélène\r\n".encode("cp1252"))
    tokenise = [*command, "tokenise", str(source), "--column", "card=card"]
    done = subprocess.run(
        [*tokenise, "-o", str(tmp_path / "out.csv"), "--keep", "name", "--encoding", "cp1252"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1].endswith(";Hélène")
    in_parts = subprocess.run(
        [*tokenise, "-o", str(tmp_path / "parts.csv"), "--keep", "name", "--encoding", "cp1252",
         "--part-mb", "0.00001"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert in_parts.returncode == 0, in_parts.stderr
    assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"card\r\n10000001\r\n")
    not_parquet = subprocess.run(
        [*command, "tokenise", str(fake), "-o", str(tmp_path / "f.csv"), "--column", "card=card"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert not_parquet.returncode == 1 and not_parquet.stderr.strip().endswith("[not_parquet]")
    assert not (tmp_path / "f.csv").exists()
    marked = subprocess.run(
        [*command, "pseudonymise", "--kind", "card"], input=b"\xef\xbb\xbf10000001\r\nx\n",
        env=env, capture_output=True, check=False,
    )  # fmt: skip
    lines = marked.stdout.decode().splitlines()
    assert (
        marked.returncode == 2
        and lines[0].startswith("casino.v1.")
        and lines[1] == "error:bad_character"
    )
    refused = subprocess.run(
        [*tokenise, "-o", str(tmp_path / "again.csv")],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and refused.stderr.strip().endswith("[not_utf8]")
    assert not (tmp_path / "again.csv").exists()
    listed = subprocess.run(
        [*command, "inbox", "list"], env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0 and listed.stdout.startswith("id\tkind")
    missing = subprocess.run(
        [*command, "whoami"],
        env={**env, "TIERS_API_KEY": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "[no_api_key]" in missing.stderr
