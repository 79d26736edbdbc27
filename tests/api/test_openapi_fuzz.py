"""Schemathesis against the app's own OpenAPI schema: no generated request may cause a 500.

The case budget is bounded for CI (TIERS_FUZZ_EXAMPLES, default 10 per operation); `make fuzz`
runs a larger one.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Api

EXAMPLES = int(os.environ.get("TIERS_FUZZ_EXAMPLES", "10"))


def credentials(api: Api, path: str) -> dict[str, str]:
    if path.startswith("/v1/audit"):
        return api.headers("dpo", "fuzz")
    if path.startswith(("/v1/domains", "/v1/clients")):
        return api.headers("ops", "fuzz")
    return api.headers("casino-app", "fuzz")


def test_no_generated_request_causes_a_server_error(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.http.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every route is in the schema
    tried = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            nonlocal tried
            tried += 1
            response = case.call(headers=credentials(api, case.path))
            assert response.status_code < 500, (case.method, case.path, response.text)
            if response.status_code >= 400:
                assert "error" in response.json() or "status" in response.json()

        run()
    assert tried >= len(operations)


def test_the_schema_gives_each_answer_its_media_type(api: Api) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    for download in (
        "/v1/jobs/{job_id}/output",
        "/v1/jobs/{job_id}/rejects",
        "/v1/inbox/{delivery_id}",
    ):
        answers = paths[download]["get"]["responses"]
        assert ["text/csv"] == list(answers["200"]["content"])
        assert ["application/json"] == list(answers["404"]["content"])
    answers = paths["/v1/pseudonymise"]["post"]["responses"]
    assert ["application/json"] == list(answers["200"]["content"])
    assert ["application/json"] == list(answers["404"]["content"])
