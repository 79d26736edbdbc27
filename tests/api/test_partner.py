"""Partner flows over HTTP: batch pseudonymisation and file jobs, end to end."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api import create_app
from tests.api.conftest import Api
from tests.conftest import ACCESS, assert_absent
from tiers.deployment import Deployment
from tiers.storage import jobs as job_repo
from tiers.tokenisation import pseudonymise_values

CLEAR = ["4970101234560001", "4970 1012 3456 0002", "lucie.moreau@example.fr"]


def test_batch_results_are_in_order_with_error_indexes(api: Api) -> None:
    values = [CLEAR[0], "x", CLEAR[1], "", "12345678"]
    response = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": values},
    )
    body = response.json()
    assert 200 == response.status_code
    assert [{"index": 1, "code": "bad_character"}, {"index": 3, "code": "empty"}] == body["errors"]
    pseudonyms = body["pseudonyms"]
    assert [None, None] == [pseudonyms[1], pseudonyms[3]]
    assert all(p.startswith("casino.v1.") for p in (pseudonyms[0], pseudonyms[2], pseudonyms[4]))
    assert_absent(response.content, CLEAR, "the response")
    entry = api.database.audit_entries()[-1]
    assert ("casino-app", "partner", "pseudonymise") == (entry.actor, entry.role, entry.action)
    assert (5, 3, 2) == (entry.counts.records_in, entry.counts.records_out, entry.counts.rejected)


@settings(max_examples=25)
@given(
    values=st.lists(
        st.one_of(st.from_regex(r"[0-9]{8,12}", fullmatch=True), st.text(max_size=5)), max_size=30
    )
)
def test_api_batches_match_the_core_in_order(api: Api, values: list[str]) -> None:
    response = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": values, "register": False},
    )
    body = response.json()
    deployment = Deployment.open(api.database.settings())
    try:
        expected = pseudonymise_values(
            deployment, access=ACCESS, domain="casino", kind="card", values=values, register=False
        )
    finally:
        deployment.close()
    assert [r if isinstance(r, str) else None for r in expected] == body["pseudonyms"]
    assert [i for i, r in enumerate(expected) if not isinstance(r, str)] == [
        e["index"] for e in body["errors"]
    ]


def test_too_many_values_and_bad_bodies_never_echo_the_input(api: Api) -> None:
    secret = "jean.secret@example.fr"
    response = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": secret},
    )
    assert 422 == response.status_code
    assert "invalid_request" == response.json()["error"]["code"]
    assert secret not in response.text
    unknown_field = api.http.post(
        "/v1/pseudonymise",
        headers=api.headers("casino-app"),
        json={"kind": "card", "values": [], "email": secret},
    )
    assert 422 == unknown_field.status_code and secret not in unknown_field.text


def test_oversized_bodies_are_refused_before_work(api: Api) -> None:
    limit = api.database.settings().max_json_body_bytes
    response = api.http.post(
        "/v1/pseudonymise",
        headers={**api.headers("casino-app"), "Content-Type": "application/json"},
        content=b"[" + b" " * limit + b"]",
    )
    assert (413, "too_large") == (response.status_code, response.json()["error"]["code"])


def upload(
    api: Api, content: bytes, query: str = "column=card=card&column=email=email&keep=amount"
) -> dict:
    response = api.http.post(
        f"/v1/files?{query}",
        headers=api.headers("casino-app", "exchange"),
        files={"file": ("customers.csv", content, "text/csv")},
    )
    return {"status": response.status_code, **response.json()}


def test_a_file_job_end_to_end_with_rejected_rows(api: Api) -> None:
    content = (
        "card,email,name,amount\n"
        f"{CLEAR[0]},{CLEAR[2]},Lucie Moreau,10.00\n"
        "bad,nobody,X,1\n"
        f"{CLEAR[1]},{CLEAR[2]},Lucie Moreau,2.50\n"
    ).encode()
    job = upload(api, content)
    assert (202, "done", 3, 2, 1) == (
        job["status"],
        job["state"],
        job["rows_in"],
        job["rows_out"],
        job["rows_rejected"],
    )
    output = api.http.get(f"/v1/jobs/{job['id']}/output", headers=api.headers("casino-app"))
    rows = list(csv.reader(io.StringIO(output.text)))
    assert ["card", "email", "amount"] == rows[0]
    assert (str(len(output.content)), "text/csv") == (
        output.headers["content-length"],
        output.headers["content-type"].split(";")[0],
    )
    assert f'attachment; filename="{job["id"]}-output.csv"' == output.headers["content-disposition"]
    assert ["10.00", "2.50"] == [row[2] for row in rows[1:]]
    assert all(row[0].startswith("casino.v1.") for row in rows[1:])
    rejects = api.http.get(f"/v1/jobs/{job['id']}/rejects", headers=api.headers("casino-app"))
    assert "line,column,code\r\n3,card,bad_character\r\n3,email,bad_format\r\n" == rejects.text
    listed = api.http.get("/v1/jobs", headers=api.headers("casino-app")).json()
    assert [job["id"]] == [j["id"] for j in listed]
    home = api.database.home
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert_absent(
        stored + api.database.stored_bytes() + output.content,
        [*CLEAR, "Lucie Moreau"],
        "the home, the database or the output",
    )


def test_form_fields_before_the_file_work_like_query_options(api: Api) -> None:
    response = api.http.post(
        "/v1/files",
        headers=api.headers("casino-app", purpose=None),
        data={"column": "card=card", "purpose": "crm", "keep": "amount"},
        files={"file": ("c.csv", b"card,amount,secret\n12345678,1,s\n", "text/csv")},
    )
    assert 202 == response.status_code, response.text
    output = api.http.get(
        f"/v1/jobs/{response.json()['id']}/output", headers=api.headers("casino-app")
    ).text
    assert output.startswith("card,amount\r\n") and ",s" not in output


def test_a_bad_file_fails_its_job_and_delivers_nothing(api: Api) -> None:
    job = upload(api, b"", "column=card=card")
    assert (400, "empty_file") == (job["status"], job["error"]["code"])
    listed = api.http.get("/v1/jobs", headers=api.headers("casino-app")).json()
    assert [("failed", "empty_file")] == [(j["state"], j["error_code"]) for j in listed]
    output = api.http.get(f"/v1/jobs/{listed[0]['id']}/output", headers=api.headers("casino-app"))
    assert (404, "not_ready") == (output.status_code, output.json()["error"]["code"])


def test_a_job_cut_off_by_a_crash_is_failed_at_restart(api: Api) -> None:
    job = upload(api, b"card\n12345678\n", "column=card=card")
    settings_ = api.database.settings(argon2_profile="test")
    deployment = Deployment.open(settings_)
    stale = datetime.now(UTC) - timedelta(hours=1)
    try:
        with deployment.transaction() as connection:
            job_repo.create(
                connection,
                job_id="f" * 32,
                client_id=job_repo.get(connection, job_id=job["id"]).client_id,
                domain="casino",
                now=stale,
            )  # type: ignore[union-attr]
    finally:
        deployment.close()
    (api.database.home / "jobs" / ("f" * 32)).mkdir(parents=True)
    (api.database.home / "jobs" / ("f" * 32) / ".output.csv.x.part").write_text("partial")
    with TestClient(create_app(settings_)) as restarted:
        listed = restarted.get("/v1/jobs", headers=api.headers("casino-app")).json()
    states = {j["id"]: (j["state"], j["error_code"]) for j in listed}
    assert ("failed", "interrupted") == states["f" * 32]
    assert ("done", None) == states[job["id"]]
    assert not (api.database.home / "jobs" / ("f" * 32)).exists()
