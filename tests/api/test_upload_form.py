"""A file upload's form, read as it streams (api.upload.stream_multipart): options as form
fields before the file, one file part, and a clear error for every other shape, with no job
output left behind that looks complete."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_partner import CLEAR

CONTENT = f"card,email\n{CLEAR[0]},{CLEAR[2]}\n".encode()
BOUNDARY = "tiers-test-boundary"


def _form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of ``(name, filename or None, content)`` parts, in order."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def _post(api: Api, body: bytes, content_type: str | None = None) -> tuple[int, str | None]:
    response = api.http.post(
        "/v1/files",
        headers={
            **api.headers("casino-app", "exchange"),
            "Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}",
        },
        content=body,
    )
    answer = response.json()
    return response.status_code, answer.get("error", {}).get("code")


def _jobs(api: Api) -> list[dict[str, object]]:
    answer = api.http.get("/v1/jobs", headers=api.headers("casino-app", "exchange")).json()
    assert isinstance(answer, list)
    return answer


def test_options_sent_as_form_fields_before_the_file_are_used(api: Api) -> None:
    body = _form(
        ("column", None, b"card=card"),
        ("column", None, b"email=email"),
        ("file", "customers.csv", CONTENT),
    )
    status, code = _post(api, body)
    assert (status, code) == (202, None)
    [job] = _jobs(api)
    assert (job["state"], job["rows_in"], job["rows_out"]) == ("done", 1, 1)


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (CONTENT, "text/csv", "bad_content_type"),
        (_form(("column", None, b"card=card")), None, "no_file"),
        (_form(("column", None, b"x" * 4097), ("file", "a.csv", CONTENT)), None, "field_too_long"),
        (
            _form(
                ("column", None, b"card=card"),
                ("file", "a.csv", CONTENT),
                ("file", "b.csv", CONTENT),
            ),
            None,
            "one_file",
        ),
    ],
    ids=["not_multipart", "no_file_part", "long_field", "two_files"],
)
def test_a_form_of_another_shape_is_refused_by_its_code(
    api: Api, body: bytes, content_type: str | None, code: str
) -> None:
    assert _post(api, body, content_type) == (400, code)
    # Nothing that looks complete: no job, or one that failed with the form's own code.
    assert all(job["state"] == "failed" for job in _jobs(api))


def test_a_windows_file_is_read_with_its_encoding_named(api: Api) -> None:
    """A spreadsheet's export: semicolons, CRLF, cp1252. Without its encoding it is refused at
    once, naming the fix; with it, every row is tokenised, the delimiter found."""
    content = f"card;email;name\r\n{CLEAR[0]};{CLEAR[2]};Hélène\r\n".encode("cp1252")
    files = {"file": ("clients.csv", content, "text/csv")}
    headers = api.headers("casino-app", "exchange")
    query = "column=card=card&column=email=email&keep=name"
    refused = api.http.post(f"/v1/files?{query}", headers=headers, files=files)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "not_utf8")
    assert "cp1252" in refused.json()["error"]["message"]
    done = api.http.post(f"/v1/files?{query}&encoding=cp1252", headers=headers, files=files)
    assert done.status_code == 202, done.text
    assert (done.json()["state"], done.json()["rows_out"]) == ("done", 1)
    output = api.http.get(f"/v1/jobs/{done.json()['id']}/output", headers=headers)
    assert output.text.splitlines()[0] == "card;email;name"
    assert output.text.splitlines()[1].endswith(";Hélène")
