"""File jobs in a process of their own, and uploads in parts: a file sent in parts, cut anywhere,
gives byte for byte the output of one upload; a part sent again is not applied twice; progress is
readable while the upload runs; a job that is abandoned, or whose process dies, fails with nothing
delivered; nothing clear is written under the home."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api, api_of
from tests.conftest import ACCESS, Database, assert_absent
from tiers._job_runner import socket_path
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, tokenise_file
from tiers.storage import jobs as jobs_repo

CARDS = [f"4970{n:012d}" for n in range(1, 30_001)]
EMAILS = [f"client.{n}@exemple.fr" for n in range(1, 30_001)]
BAD = {7: "not a card", 20_011: "12"}
OPEN = {"column": ["card=card", "email=email"], "keep": ["amount"]}
QUERY = "column=card=card&column=email=email&keep=amount"


def _content() -> bytes:
    lines = ["card;email;amount"]
    for n, (card, email) in enumerate(zip(CARDS, EMAILS, strict=True)):
        lines.append(f"{BAD.get(n, card)};{email};{n % 97}.50")
    return ("\r\n".join(lines) + "\r\n").encode()


CONTENT = _content()
CLEAR = [CARDS[0], CARDS[-1], EMAILS[0], EMAILS[12_345]]


@pytest.fixture
def single(api: Api) -> tuple[bytes, bytes]:
    """The output and rejects of the file sent as one upload (in the worker's thread)."""
    job = _upload(api, CONTENT)
    assert "done" == job["state"], job
    return _outputs(api, job["id"])


def _upload(api: Api, content: bytes, who: str = "casino-app") -> dict[str, object]:
    response = api.http.post(
        f"/v1/files?{QUERY}", headers=api.headers(who), files={"file": ("in.csv", content)}
    )
    assert 202 == response.status_code, response.text
    return dict(response.json())


def _outputs(api: Api, job_id: str) -> tuple[bytes, bytes]:
    headers = api.headers("casino-app")
    output = api.http.get(f"/v1/jobs/{job_id}/output", headers=headers)
    rejects = api.http.get(f"/v1/jobs/{job_id}/rejects", headers=headers)
    assert (200, 200) == (output.status_code, rejects.status_code)
    return output.content, rejects.content


def _open(api: Api, who: str = "casino-app", **options: object) -> str:
    response = api.http.post("/v1/files", headers=api.headers(who), json={**OPEN, **options})
    assert 202 == response.status_code, response.text
    assert "running" == response.json()["state"]
    return str(response.json()["id"])


def _part(api: Api, job_id: str, number: int, data: bytes, **headers: str) -> Any:
    return api.http.put(
        f"/v1/files/{job_id}/parts/{number}",
        headers={**api.headers("casino-app"), **headers},
        content=data,
    )


def _complete(api: Api, job_id: str, parts: int) -> Any:
    return api.http.post(
        f"/v1/files/{job_id}/complete", headers=api.headers("casino-app"), json={"parts": parts}
    )


def _in_parts(content: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(content)]
    return [content[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _sent_in_parts(api: Api, parts: list[bytes]) -> dict[str, object]:
    job_id = _open(api)
    for number, data in enumerate(parts, start=1):
        response = _part(api, job_id, number, data)
        assert 200 == response.status_code, response.text
        assert {"part": number, "applied": True} == response.json()
    response = _complete(api, job_id, len(parts))
    assert 200 == response.status_code, response.text
    return dict(response.json())


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(1, len(CONTENT) - 1), min_size=1, max_size=5))
def test_a_file_in_parts_cut_anywhere_gives_the_output_of_one_upload(
    api: Api, single: tuple[bytes, bytes], cuts: list[int]
) -> None:
    job = _sent_in_parts(api, _in_parts(CONTENT, cuts))
    assert ("done", 30_000, 29_998, 2) == (
        job["state"], job["rows_in"], job["rows_out"], job["rows_rejected"],
    )  # fmt: skip
    assert single == _outputs(api, str(job["id"]))


def _by_the_command_line_path(database: Database, folder: Path) -> tuple[bytes, bytes]:
    """The file tokenised as `tiers tokenise-file` does it (in this process, by the operator)."""
    deployment = Deployment.open(database.settings())
    try:
        tokenise_file(
            deployment, access=ACCESS, source=io.BytesIO(CONTENT), output=folder / "out.csv",
            rejects=folder / "rejects.csv", domain="casino", keep=["amount"],
            columns=[ColumnSpec("card", "card"), ColumnSpec("email", "email")],
        )  # fmt: skip
    finally:
        deployment.close()
    return (folder / "out.csv").read_bytes(), (folder / "rejects.csv").read_bytes()


def test_one_large_upload_runs_in_its_own_process_with_the_same_output(
    database: Database, tmp_path: Path
) -> None:
    with api_of(database, file_job_process_bytes=0) as own:
        job = _upload(own, CONTENT)
        assert "done" == job["state"]
        entry = [e for e in own.database.audit_entries() if e.action == "tokenise_file"][-1]
        assert ("casino-app", "test") == (entry.actor, entry.purpose)
        assert 30_000 == entry.counts.records_in
        assert _by_the_command_line_path(database, tmp_path) == _outputs(own, str(job["id"]))


def test_a_part_sent_again_is_recognised_and_not_applied_twice(
    api: Api, single: tuple[bytes, bytes]
) -> None:
    first, second = CONTENT[:400_000], CONTENT[400_000:]
    job_id = _open(api)
    assert {"part": 1, "applied": True} == _part(api, job_id, 1, first).json()
    again = _part(api, job_id, 1, first)  # its answer was lost: the client sends it again
    assert (200, False) == (again.status_code, again.json()["applied"])
    other = _part(api, job_id, 1, second)
    assert (409, "part_conflict") == (other.status_code, other.json()["error"]["code"])
    ahead = _part(api, job_id, 3, second)
    assert (409, "part_out_of_order") == (ahead.status_code, ahead.json()["error"]["code"])
    early = _complete(api, job_id, 2)
    assert (409, "part_missing") == (early.status_code, early.json()["error"]["code"])
    assert 200 == _part(api, job_id, 2, second).status_code
    done = _complete(api, job_id, 2)
    assert "done" == done.json()["state"]
    assert single == _outputs(api, job_id)
    late = _part(api, job_id, 3, b"x")
    assert (409, "job_ended") == (late.status_code, late.json()["error"]["code"])


def test_a_part_that_does_not_match_its_digest_is_refused_and_not_applied(api: Api) -> None:
    part = CONTENT[:1000]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    right = base64.b64encode(hashlib.sha256(part).digest()).decode()
    job_id = _open(api)
    refused = _part(api, job_id, 1, part, **{"Content-Digest": f"sha-256=:{wrong}:"})
    assert (400, "part_digest") == (refused.status_code, refused.json()["error"]["code"])
    accepted = _part(api, job_id, 1, part, **{"Content-Digest": f"sha-256=:{right}:"})
    assert {"part": 1, "applied": True} == accepted.json()
    malformed = _part(api, job_id, 2, part, **{"Content-Digest": "sha-256=:bm9wZQ==:"})
    assert (400, "invalid_request") == (malformed.status_code, malformed.json()["error"]["code"])


def test_progress_is_readable_while_the_parts_arrive(api: Api) -> None:
    content = CONTENT * 1  # about 1.2 MB
    parts = _in_parts(content, [300_000, 600_000, 900_000])
    job_id = _open(api)
    sent = 0
    for number, data in enumerate(parts[:3], start=1):
        assert 200 == _part(api, job_id, number, data).status_code
        sent += len(data)
        job = api.http.get(f"/v1/jobs/{job_id}", headers=api.headers("casino-app")).json()
        assert ("running", sent, number) == (job["state"], job["bytes_received"], job["parts"])
        assert 0 <= job["rows_in"] <= content[:sent].count(b"\n")
    assert 200 == _part(api, job_id, 4, parts[3]).status_code
    done = _complete(api, job_id, 4).json()
    assert (30_000, None) == (done["rows_in"], done["bytes_received"])


def test_the_counts_so_far_grow_while_a_large_file_is_tokenised(database: Database) -> None:
    """Where the tokeniser runs as the parts arrive (PostgreSQL; SQLite holds the upload in
    memory until it is complete), rows read and rejected so far are seen before the end."""
    if database.backend == "sqlite":
        pytest.skip("SQLite holds the upload until it is complete (the test above)")
    content = CONTENT + b"".join(CONTENT.split(b"\r\n", 1)[1] for _ in range(7))
    with api_of(database) as api:
        job_id = _open(api)
        parts = _in_parts(content, list(range(1 << 20, len(content), 1 << 20)))
        for number, data in enumerate(parts, start=1):
            assert 200 == _part(api, job_id, number, data).status_code
        deadline = time.monotonic() + 30
        while (seen := _seen(api, job_id))["rows_in"] < 30_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Before complete: the rows so far, with the two bad rows of the file's first copy.
        assert "running" == seen["state"]
        assert 30_000 <= seen["rows_in"] <= 240_000 and seen["rows_rejected"] >= 2
        done = _complete(api, job_id, len(parts)).json()
        assert (240_000, 16) == (done["rows_in"], done["rows_rejected"])


def _seen(api: Api, job_id: str) -> Any:
    return api.http.get(f"/v1/jobs/{job_id}", headers=api.headers("casino-app")).json()


def test_a_job_that_receives_nothing_fails_as_abandoned_and_delivers_nothing(
    database: Database,
) -> None:
    with api_of(database, upload_resume_seconds=1.0) as api:
        job_id = _open(api)
        assert 200 == _part(api, job_id, 1, CONTENT[:50_000]).status_code
        deadline = time.monotonic() + 30
        while _state(api, job_id)[0] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ("failed", "upload_abandoned") == _state(api, job_id)
        late = _part(api, job_id, 2, CONTENT[50_000:])
        assert (409, "job_ended") == (late.status_code, late.json()["error"]["code"])
        assert not (api.database.home / "jobs" / job_id).exists()
        assert not socket_path(job_id).exists()


def _state(api: Api, job_id: str) -> tuple[str, str | None]:
    job = api.http.get(f"/v1/jobs/{job_id}", headers=api.headers("casino-app")).json()
    return job["state"], job["error_code"]


def _runner_pid(job_id: str) -> int:
    """The process that runs the job, found as an operator would (its command line)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if handle.read().split(b"\0")[-2:-1] == [job_id.encode()]:
                return int(pid)
    raise AssertionError("no process runs the job")


def test_a_job_whose_process_dies_fails_with_nothing_delivered(api: Api) -> None:
    job_id = _open(api)
    assert 200 == _part(api, job_id, 1, CONTENT[:50_000]).status_code
    os.kill(_runner_pid(job_id), signal.SIGKILL)
    time.sleep(0.3)
    late = _part(api, job_id, 2, CONTENT[50_000:])
    assert (409, "job_ended") == (late.status_code, late.json()["error"]["code"])
    assert ("failed", "interrupted") == _state(api, job_id)
    output = api.http.get(f"/v1/jobs/{job_id}/output", headers=api.headers("casino-app"))
    assert (404, "not_ready") == (output.status_code, output.json()["error"]["code"])


def test_bad_options_are_refused_before_any_job_opens(api: Api) -> None:
    headers = api.headers("casino-app")
    for options, code in (
        ({"column": ["card"]}, "bad_column_spec"),
        ({"column": ["card=card"], "keep": ["card"]}, "column_named_twice"),
        ({"column": ["card=card"], "delimiter": '"'}, "bad_delimiter"),
        ({"column": []}, "invalid_request"),
        ({"column": ["card=card"], "colour": "red"}, "invalid_request"),
    ):
        response = api.http.post("/v1/files", headers=headers, json=options)
        assert (400, code) == (response.status_code, response.json()["error"]["code"]), options
    no_purpose = api.http.post("/v1/files", headers=api.headers("casino-app", None), json=OPEN)
    assert "purpose_required" == no_purpose.json()["error"]["code"]
    assert [] == api.http.get("/v1/jobs", headers=headers).json()


def test_another_clients_job_is_unknown_to_it(api: Api) -> None:
    job_id = _open(api)
    other = api.http.put(
        f"/v1/files/{job_id}/parts/1", headers=api.headers("sncf-app"), content=b"card\n1\n"
    )
    assert (404, "unknown_job") == (other.status_code, other.json()["error"]["code"])
    other = api.http.post(
        f"/v1/files/{job_id}/complete", headers=api.headers("sncf-app"), json={"parts": 1}
    )
    assert (404, "unknown_job") == (other.status_code, other.json()["error"]["code"])


def test_a_part_over_its_limit_is_refused(database: Database) -> None:
    with api_of(database, upload_part_max_bytes=64 * 1024) as api:
        job_id = _open(api)
        response = _part(api, job_id, 1, CONTENT[: 65 * 1024])
        assert (413, "too_large") == (response.status_code, response.json()["error"]["code"])
        assert 200 == _part(api, job_id, 1, CONTENT[: 60 * 1024]).status_code


def _files_under(root: Path) -> Iterator[bytes]:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix not in (".db-shm",):
            yield path.read_bytes()


def test_nothing_clear_is_written_under_the_home(api: Api, tmp_path: Path) -> None:
    job_id = _open(api)
    for number, data in enumerate(_in_parts(CONTENT, [333_333]), start=1):
        assert 200 == _part(api, job_id, number, data).status_code
    assert "done" == _complete(api, job_id, 2).json()["state"]
    everything = b"".join(_files_under(api.database.home)) + api.database.stored_bytes()
    assert_absent(everything, CLEAR, "the home and the database")


def test_a_job_running_when_the_service_stops_fails_as_interrupted(database: Database) -> None:
    with api_of(database) as api:
        job_id = _open(api)
        assert 200 == _part(api, job_id, 1, CONTENT[:50_000]).status_code
        pid = _runner_pid(job_id)
    with pytest.raises(ProcessLookupError):  # the runner has ended with the service
        os.kill(pid, 0)
    deployment = Deployment.open(database.settings())
    try:
        with deployment.engine.connect() as connection:
            job = jobs_repo.get(connection, job_id=job_id)
    finally:
        deployment.close()
    assert job is not None and ("failed", "interrupted") == (job.state, job.error_code)
    assert not (database.home / "jobs" / job_id).exists()
    assert not socket_path(job_id).exists()


def test_a_client_runs_a_bounded_number_of_jobs_at_once(database: Database) -> None:
    with api_of(database, max_running_jobs=2) as api:
        first, _second = _open(api), _open(api)
        refused = api.http.post("/v1/files", headers=api.headers("casino-app"), json=OPEN)
        assert (409, "too_many_jobs") == (refused.status_code, refused.json()["error"]["code"])
        other = api.http.post("/v1/files", headers=api.headers("sncf-app"), json=OPEN)
        assert 202 == other.status_code  # another client's jobs are its own
        assert 2 == len(api.http.get("/v1/jobs", headers=api.headers("casino-app")).json())
        assert 200 == _part(api, first, 1, CONTENT).status_code
        assert "done" == _complete(api, first, 1).json()["state"]
        assert (
            202
            == api.http.post("/v1/files", headers=api.headers("casino-app"), json=OPEN).status_code
        )


def test_a_job_whose_process_cannot_start_fails_with_its_code(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "tmp" / f"tiers-{os.getuid()}"
    shared.mkdir(parents=True)
    shared.chmod(0o777)  # a folder others could write in: the runner refuses to listen there
    monkeypatch.setenv("TMPDIR", str(shared.parent))
    refused = api.http.post("/v1/files", headers=api.headers("casino-app"), json=OPEN)
    assert (503, "job_process") == (refused.status_code, refused.json()["error"]["code"])
    [job] = api.http.get("/v1/jobs", headers=api.headers("casino-app")).json()
    assert ("failed", "job_process") == (job["state"], job["error_code"])
    assert [] == list(shared.iterdir())
