"""Blind mode, the partner's side (``tiers_client.blind``, ``tiers-client blind-tokenise``): the
RFC 9497 half the partner runs, checked against the RFC's vectors, then used against a real
``tiers serve`` through a relay that keeps every byte sent, to show that no clear identifier
reaches the service, in a request, the database, the access log or the server's output."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tiers_client import AsyncClient, Client, errors, oprf
from tiers_client.blind import blind_batch, pseudonym_text, translated, unblinded
from tiers_client.identifiers import normalise
from tiers_client.models import BlindEvaluation, BlindKeys, BlindTranslation, ValueRefused

from keys.oprf import Mode, OprfKey, derive_key_pair, rekeyed_with_proof
from tests.client.conftest import Service, serve, stop_started
from tests.conftest import Database, assert_absent, run_coroutine
from tests.hardening.service import tiers
from tests.relay import Relay

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc9497_ristretto255.json").read_text()
)
PURPOSE = "blind mode tests"
# What a partner holds, as written in its files; never to be seen by the service.
CLEAR = {
    "email": ["  Anne.Leroy@Example.FR", "bruno.marchal@exemple.fr"],
    "card": ["4970 1012 3456 7890", "5018-2222-3333-44"],
    "phone": ["06 12 34 56 78", "+33 7 98 76 54 32"],
    "person": ["Leroy|Anne|1980-02-29|75 011", "Marchal|Bruno|1975-06-01|69003"],
}
FORMS = sorted(
    {value for values in CLEAR.values() for value in values}
    | {normalise(kind, value) for kind, values in CLEAR.items() for value in values}
    | {"Leroy", "Marchal", "4970101234567890", "98765432"}
)
BLIND_PSEUDONYM = re.compile(r"(casino|sncf|galeries)\.v[0-9]+\.[a-z2-7]{52}")


def hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


@pytest.mark.parametrize(
    ("mode", "vector"),
    [(oprf.OPRF, v) for v in VECTORS["oprf"]["vectors"]]
    + [(oprf.VOPRF, v) for v in VECTORS["voprf"]["vectors"]],
    ids=["A.1.1.1", "A.1.1.2", "A.1.2.1", "A.1.2.2", "A.1.2.3-batch"],
)
def test_the_partner_half_gives_the_rfcs_values(mode: int, vector: dict[str, Any]) -> None:
    inputs, blinds = hexes(vector["input"]), hexes(vector["blind"])
    pairs = zip(inputs, blinds, strict=True)
    blinded = [oprf.blind(data, blinding, mode)[1] for data, blinding in pairs]
    assert vector["blinded"] == [element.hex() for element in blinded]
    evaluated = hexes(vector["evaluated"])
    outputs = [oprf.finalize(*triple) for triple in zip(inputs, blinds, evaluated, strict=True)]
    assert vector["output"] == [output.hex() for output in outputs]
    if mode == oprf.VOPRF:
        public, proof = bytes.fromhex(VECTORS["voprf"]["pkSm"]), bytes.fromhex(vector["proof"])
        assert oprf.verify_proof(public, blinded, evaluated, proof)


def test_a_proof_that_does_not_hold_is_seen() -> None:
    vector = VECTORS["voprf"]["vectors"][2]  # a batch of two
    public, proof = bytes.fromhex(VECTORS["voprf"]["pkSm"]), bytes.fromhex(vector["proof"])
    blinded, evaluated = hexes(vector["blinded"]), hexes(vector["evaluated"])
    assert oprf.verify_proof(public, blinded, evaluated, proof)
    flipped = bytes([proof[0] ^ 1]) + proof[1:]
    other_key = oprf.blind(b"another key")[1]
    assert not oprf.verify_proof(public, blinded, evaluated, flipped)
    assert not oprf.verify_proof(public, blinded, evaluated[::-1], proof)
    assert not oprf.verify_proof(other_key, blinded, evaluated, proof)
    assert not oprf.verify_proof(public, blinded, evaluated, proof[:63])
    assert not oprf.verify_proof(public, blinded[:1], evaluated, proof)
    assert not oprf.verify_proof(bytes(32), blinded, evaluated, proof)  # the identity
    with pytest.raises(oprf.BadElement):
        oprf.unblind(bytes.fromhex(vector["blind"][0]), bytes(32))
    with pytest.raises(oprf.BadElement):
        oprf.unblind(bytes.fromhex(vector["blind"][0]), b"\xff" * 32)


def test_a_translation_is_used_only_when_its_proofs_hold() -> None:
    """The service's proofs (keys.oprf, the server's code) checked by the client's own
    implementation: a translation from versions 1 and 2 to 3 holds; one pseudonym moved by
    another scalar, a proof altered, missing, or of the other version, and an unknown key are
    each refused whole (``bad_proof``)."""
    v1, v2, v3, other = (
        OprfKey(*derive_key_pair(seed * 32, b"casino", Mode.VOPRF))
        for seed in (b"1", b"2", b"3", b"x")
    )
    keys = BlindKeys("casino", False, "FR", {3: v3.public, 2: v2.public, 1: v1.public}, "oprf")
    points = [oprf.hash_to_group(bytes([i])) for i in range(4)]
    old = [v1.evaluate(points[:2]), v2.evaluate(points[2:])]
    sent = [pseudonym_text("casino", 1, e) for e in old[0]]
    sent += [pseudonym_text("casino", 2, e) for e in old[1]]
    (moved1, proof1), (moved2, proof2) = (
        rekeyed_with_proof(old[0], v3, v1),
        rekeyed_with_proof(old[1], v3, v2),
    )
    texts = [pseudonym_text("casino", 3, e) for e in moved1 + moved2]
    assert texts == [pseudonym_text("casino", 3, e) for e in v3.evaluate(points)]

    def answer(pseudonyms: list[str], proofs: dict[int, bytes]) -> BlindTranslation:
        return BlindTranslation("casino", 3, pseudonyms, proofs)

    assert translated(sent, answer(texts, {1: proof1, 2: proof2}), keys) == texts
    forged = [*texts[:3], pseudonym_text("casino", 3, other.evaluate(points[3:])[0])]
    flipped = proof1[:5] + bytes([proof1[5] ^ 1]) + proof1[6:]
    for bad, proofs, known in (
        (forged, {1: proof1, 2: proof2}, keys),
        (texts, {1: flipped, 2: proof2}, keys),
        (texts, {1: proof1}, keys),
        (texts, {1: proof2, 2: proof1}, keys),
        (texts[:3], {1: proof1, 2: proof2}, keys),
        (texts, {1: proof1, 2: proof2}, dataclasses.replace(keys, public={3: v3.public})),
        ([t.replace("casino.v3.", "casino.v2.") for t in texts], {1: proof1, 2: proof2}, keys),
        ([t.upper() for t in texts], {1: proof1, 2: proof2}, keys),
        (texts, {1: proof1, 2: proof2}, dataclasses.replace(keys, domain="sncf")),
    ):
        with pytest.raises(errors.BadProofError) as refused:
            translated(sent, answer(bad, proofs), known)
        assert refused.value.code == "bad_proof"


@dataclasses.dataclass(frozen=True)
class Blind:
    service: Service
    relay: Relay
    output: Path  # the server's standard output and error

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.relay.port}"

    def client(self, name: str, **options: Any) -> Client:
        return Client(self.url, self.service.keys[name], purpose=PURPOSE, **options)

    def command(self, *args: str, key: str = "casino-app") -> subprocess.CompletedProcess[str]:
        env = {"TIERS_URL": self.url, "TIERS_API_KEY": self.service.keys[key],
               "TIERS_PURPOSE": PURPOSE, "PATH": str(Path(sys.executable).parent)}  # fmt: skip
        command = [str(Path(sys.executable).with_name("tiers-client")), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def blind(database: Database, tmp_path: Path) -> Iterator[Blind]:
    output = tmp_path / "server.out"
    service = serve(database, output)
    relay = Relay("127.0.0.1", int(service.url.rsplit(":", 1)[1]))
    yield Blind(service, relay, output)
    relay.cut()
    stop_started()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder of the partner's files alone."""
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def _file(path: Path) -> Path:
    """A partner's file: one row of each customer, a bad card, a row one field short."""
    lines = ["email;card;phone;person;points"]
    for i in range(2):
        lines.append(";".join([*(CLEAR[k][i] for k in CLEAR), str(100 * (i + 1))]))
    lines += ["x@y.fr;12;0612345678;Roy|Li|1990-01-01|75001;=SUM(A1)", "short;row"]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def _evaluate(blind: Blind, elements: list[bytes]) -> Any:
    """``POST /v1/blind/evaluate`` as any partner's program would send it (not through the
    client), straight to the service."""
    texts = [base64.urlsafe_b64encode(e).rstrip(b"=").decode() for e in elements]
    answer = httpx.post(
        f"{blind.service.url}/v1/blind/evaluate", json={"elements": texts},
        headers={"Authorization": f"Bearer {blind.service.keys['casino-app']}",
                 "X-Purpose": PURPOSE},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


COLUMNS = ["--column", "email=email", "--column", "card=card", "--column", "phone=phone",
           "--column", "person=person", "--keep", "points"]  # fmt: skip


@pytest.mark.slow
def test_no_clear_identifier_reaches_the_service(
    blind: Blind, database: Database, tmp_path: Path
) -> None:
    with blind.client("casino-app") as casino:
        for kind, values in CLEAR.items():
            found = casino.blind_pseudonymise(kind, values)
            assert all(BLIND_PSEUDONYM.fullmatch(str(p)) for p in found), found
    source = _file(tmp_path / "customers.csv")
    done = blind.command("blind-tokenise", str(source), "-o", str(tmp_path / "out.csv"), *COLUMNS)
    assert done.returncode == 2, done.stderr  # a rejected row
    assert b"POST /v1/blind/evaluate" in blind.relay.upstream  # the traffic went through it
    assert b"/v1/pseudonymise" not in blind.relay.upstream
    assert_absent(bytes(blind.relay.upstream), FORMS, "the requests the service received")
    assert_absent(bytes(blind.relay.downstream), FORMS, "the service's answers")
    assert_absent(database.stored_bytes(), FORMS, "the database")
    assert_absent(repr(database.audit_entries()).encode(), FORMS, "the access log")
    assert_absent(blind.output.read_bytes(), FORMS, "the server's output")
    assert_absent(done.stdout.encode() + done.stderr.encode(), FORMS, "the command's output")
    counted = [e for e in database.audit_entries() if e.action == "blind_evaluate"]
    # 4 kinds of 2 values, then the file's 3 whole rows of 4 identifiers less its bad card
    assert sum(e.counts.records_in for e in counted) == 8 + 11


@pytest.mark.slow
def test_one_identifier_one_pseudonym_in_its_own_domain(blind: Blind) -> None:
    email = CLEAR["email"][0]
    with blind.client("casino-app") as casino, blind.client("sncf-app") as sncf:
        first = casino.blind_pseudonymise("email", [email, email.upper(), "not-an-email"])
        again = casino.blind_pseudonymise("email", [normalise("email", email)])
        elsewhere = sncf.blind_pseudonymise("email", [email])
        clear_mode = casino.pseudonymise("email", [email], register=False)
    assert first[0] == first[1] == again[0]  # blinded three times, with three blinds
    assert first[2] == ValueRefused(2, "bad_format")  # refused here, never sent
    assert str(first[0]).startswith("casino.v1.") and str(elsewhere[0]).startswith("sncf.v1.")
    assert first[0] not in (elsewhere[0], clear_mode[0])
    # The pseudonym is the domain key times the hash of the identifier: what the service
    # gives for that hash sent unblinded.
    point = oprf.hash_to_group(oprf.identifier_input("email", normalise("email", email)))
    [evaluated] = BlindEvaluation.of(_evaluate(blind, [point])).evaluated
    assert first[0] == pseudonym_text("casino", 1, evaluated)
    uploads = bytes(blind.relay.upstream).split(b"POST /v1/blind/evaluate")[1:]
    assert len(uploads) == 3 and len(set(uploads)) == 3  # each blind was new


@pytest.mark.slow
def test_a_proof_that_fails_refuses_the_batch(blind: Blind, files: Path) -> None:
    with blind.client("casino-app") as casino, blind.client("sncf-app") as sncf:
        keys = casino.blind_keys()
        other = sncf.blind_keys().public[1]
        with pytest.raises(errors.BadProofError) as refused:
            casino.blind_pseudonymise("email", CLEAR["email"], public_key=other)
        assert refused.value.code == "bad_proof"
        assert_absent(str(refused.value).encode(), FORMS, "the error")
        # A real answer with two of its evaluations swapped: the proof no longer holds.
        batch = blind_batch([("email", v) for v in CLEAR["email"]], keys)
        answer = BlindEvaluation.of(_evaluate(blind, batch.elements))
        assert unblinded(batch, answer, keys.public[1])  # as it came, it holds
        swapped = dataclasses.replace(answer, evaluated=answer.evaluated[::-1])
        with pytest.raises(errors.BadProofError):
            unblinded(batch, swapped, keys.public[1])
    published = json.loads(blind.command("blind-keys", key="sncf-app").stdout)
    assert (published["domain"], published["card_luhn"], published["phone_region"]) == (
        "sncf", False, "FR",
    )  # fmt: skip
    pinned = published["public"]["1"]
    assert base64.urlsafe_b64decode(pinned + "=") == other
    source = _file(files / "customers.csv")
    failed = blind.command(
        "blind-tokenise", str(source), "-o", str(files / "out.csv"), *COLUMNS,
        f"--public-key={pinned}",  # with "=": a key may start with "-"
    )  # fmt: skip
    assert failed.returncode == 1 and failed.stderr.strip().endswith("[bad_proof]")
    assert [p.name for p in files.iterdir()] == ["customers.csv"]  # no output, no part


def _read(path: Path, delimiter: str = ";") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""),
                           delimiter=delimiter))  # fmt: skip


@pytest.mark.slow
def test_the_file_command(blind: Blind, tmp_path: Path) -> None:
    source = _file(tmp_path / "customers.csv")
    out = tmp_path / "out.csv"
    done = blind.command("blind-tokenise", str(source), "-o", str(out), *COLUMNS)
    assert done.returncode == 2 and "only blinded elements were sent" in done.stderr
    rows = _read(out)
    assert rows[0] == ["email", "card", "phone", "person", "points"]
    with blind.client("casino-app") as casino:
        expected = {kind: casino.blind_pseudonymise(kind, CLEAR[kind]) for kind in CLEAR}
    for i, row in enumerate(rows[1:]):
        assert row == [*(str(expected[kind][i]) for kind in CLEAR), str(100 * (i + 1))]
    assert len(rows) == 3

    async def asynchronously() -> int:
        async with AsyncClient(blind.url, blind.service.keys["casino-app"], purpose=PURPOSE) as c:
            report = await c.blind_tokenise_file(
                source, tmp_path / "async.csv", columns=COLUMNS[1::2][:4], keep=["points"],
                delimiter=";",
            )  # fmt: skip
        return report.rows_rejected

    assert run_coroutine(asynchronously()) == 2  # the bad card, the short row
    assert _read(tmp_path / "async.csv") == rows  # the same file as the command's
    assert _read(Path(f"{out}.rejects.csv"), ",") == [
        ["line", "column", "code"], ["4", "card", "bad_length"], ["5", "", "field_count"],
    ]  # fmt: skip
    # The same file as Parquet, in and out: the same pseudonyms.
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.csv as pa_csv  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    whole = tmp_path / "whole.csv"
    whole.write_text("\n".join(source.read_text().splitlines()[:3]) + "\n")
    table = pa_csv.read_csv(
        whole, parse_options=pa_csv.ParseOptions(delimiter=";"),
        convert_options=pa_csv.ConvertOptions(column_types={"points": pyarrow.string()}),
    )  # fmt: skip
    pq.write_table(table, tmp_path / "customers.parquet")
    done = blind.command("blind-tokenise", str(tmp_path / "customers.parquet"), "-o",
                         str(tmp_path / "out.parquet"), *COLUMNS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    back = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [list(row.values()) for row in back] == rows[1:]


@pytest.mark.slow
def test_a_file_that_cannot_be_read_leaves_nothing(blind: Blind, files: Path) -> None:
    source = files / "customers.csv"
    source.write_bytes("email\r\nanne@exemple.fr\r\nb\xe9a@exemple.fr\r\n".encode("cp1252"))
    out = files / "out.csv"
    failed = blind.command("blind-tokenise", str(source), "-o", str(out), "--column", "email=email")
    assert failed.returncode == 1 and failed.stderr.strip().endswith("[not_utf8]")
    unknown = blind.command("blind-tokenise", str(source), "-o", str(out), "--column",
                            "mail=email", "--encoding", "cp1252")  # fmt: skip
    assert unknown.returncode == 1 and unknown.stderr.strip().endswith("[unknown_column]")
    assert [p.name for p in files.iterdir()] == ["customers.csv"]
    cp1252 = blind.command("blind-tokenise", str(source), "-o", str(out), "--column",
                           "email=email", "--encoding", "cp1252")  # fmt: skip
    assert cp1252.returncode == 0, cp1252.stderr
    assert len(_read(out, ",")) == 3


@pytest.mark.slow
def test_the_domain_s_rules_and_keys_follow_the_service(blind: Blind) -> None:
    env = blind.service.env
    tiers("domain", "add", "galeries", "--role", "partner", "--luhn", env=env)
    key = tiers("client", "add", "galeries-app", "--role", "partner", "--domain", "galeries",
                env=env).strip()  # fmt: skip
    with Client(blind.url, key, purpose=PURPOSE) as galeries:
        assert galeries.blind_keys().card_luhn
        valid, invalid = "4970 1012 3456 7893", "4970 1012 3456 7890"
        found = galeries.blind_pseudonymise("card", [valid, invalid])
    assert BLIND_PSEUDONYM.fullmatch(str(found[0])) and found[1] == ValueRefused(1, "bad_checksum")
    with blind.client("casino-app") as casino:
        before = casino.blind_pseudonymise("phone", CLEAR["phone"])
        old_key = casino.blind_keys().public[1]
        tiers("key", "rotate", "casino", env=env)
        after = casino.blind_pseudonymise("phone", CLEAR["phone"])
        assert [str(p)[:10] for p in after] == ["casino.v2."] * 2
        assert set(before).isdisjoint(after)
        # The old pseudonyms follow the key without the identifiers: re-keyed by the service.
        assert casino.blind_translate([str(p) for p in before]) == after
        with pytest.raises(errors.BadProofError):  # a pin of the old key fails after a rotation
            casino.blind_pseudonymise("phone", CLEAR["phone"], public_key=old_key)

    async def asynchronously() -> tuple[list[str | ValueRefused], list[str]]:
        async with AsyncClient(blind.url, blind.service.keys["casino-app"], purpose=PURPOSE) as c:
            found = await c.blind_pseudonymise("phone", CLEAR["phone"])
            return found, await c.blind_translate([str(p) for p in before])

    assert run_coroutine(asynchronously()) == (after, after)
