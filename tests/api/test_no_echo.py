"""Error messages name the field and the code, never the input: a column spec, a kept column,
a job or delivery id, a domain, a client or an exchange type sent back could carry anything."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

MARK = "zqxmark"
ID = f"{MARK}0123456789abcdef0123456789"
CSV = f"card,{MARK}\n12345678,1\n".encode()

# (who, method, path, json body or raw CSV, the code expected)
BAD: list[tuple[str, str, str, Any, str]] = [
    ("casino-app", "POST", "/v1/pseudonymise", {"kind": "card", "values": ["1"], "domain": MARK},
     "unknown_domain"),
    ("casino-app", "POST", "/v1/pseudonymise", {"kind": MARK, "values": ["1"]}, "unknown_kind"),
    ("casino-app", "POST", f"/v1/files?column=card={MARK}", CSV, "unknown_kind"),
    ("casino-app", "POST", f"/v1/files?column={MARK}", CSV, "bad_column_spec"),
    ("casino-app", "POST", f"/v1/files?column={MARK}x=card", CSV, "unknown_column"),
    ("casino-app", "POST", f"/v1/files?column=card=card&keep={MARK}x", CSV, "unknown_column"),
    ("casino-app", "POST", "/v1/files?column=card=card&keep=card", CSV, "column_named_twice"),
    ("casino-app", "GET", f"/v1/jobs/{ID}", None, "unknown_job"),
    ("casino-app", "GET", f"/v1/inbox/{ID}", None, "unknown_delivery"),
    ("casino-app", "POST", f"/v1/exchanges?type={MARK}", CSV, "unknown_exchange"),
    ("casino-app", "POST", "/v1/exchanges?type=purchases", CSV, "undeclared_column"),
    ("ops", "POST", f"/v1/clients/{MARK}/revoke", None, "unknown_client"),
    ("ops", "POST", "/v1/clients", {"name": MARK, "role": "partner", "domain": "hub"},
     "wrong_role"),
    ("ops", "GET", f"/v1/domains/{MARK}/keys", None, "unknown_domain"),
]  # fmt: skip


@pytest.mark.parametrize(("who", "method", "path", "body", "code"), BAD)
def test_an_error_names_the_code_and_not_the_input(
    api: Api, who: str, method: str, path: str, body: Any, code: str
) -> None:
    headers = api.headers(who)
    if isinstance(body, bytes) and path.startswith("/v1/files"):
        response = api.http.request(
            method, path, headers=headers, files={"file": ("in.csv", body, "text/csv")}
        )
    elif isinstance(body, bytes):
        headers["Content-Type"] = "text/csv"
        response = api.http.request(method, path, headers=headers, content=body)
    else:
        response = api.http.request(method, path, headers=headers, json=body)
    assert response.status_code >= 400, response.text
    assert code == response.json()["error"]["code"], response.text
    assert MARK not in response.text
