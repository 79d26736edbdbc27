"""Partner data routes: batch pseudonymisation and file jobs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.actions import logged_as
from api.calls import SHORT_CALL_VALUES, call, pseudonymise_grouped, pseudonymise_one
from api.deps import (
    CurrentAccess,
    CurrentClient,
    DataAccess,
    DeploymentDep,
    PurposeHeader,
    access_with,
)
from api.downloads import CsvDownload
from api.schemas import (
    ERRORS,
    JSON_ERRORS,
    DelimiterQuery,
    EncodingQuery,
    JobOut,
    PseudonymiseRequest,
    PseudonymiseResponse,
    WhoAmI,
    batch_results,
)
from api.upload import held_for, paced, stream_multipart
from audit import Action
from errors import InvalidRequest, TiersError
from tiers import clients
from tiers.jobs import (
    JobRecord,
    delete_job,
    fail_file_job,
    get_job,
    job_file,
    list_jobs,
    open_file_job,
    run_file_job,
)
from tiers.tokenisation import ValuesCall

router = APIRouter(prefix="/v1", responses=ERRORS)


@router.get(
    "/whoami",
    name="whoami",
    openapi_extra=logged_as(Action.WHOAMI),
    response_model=WhoAmI,
    tags=["clients"],
)
async def whoami(deployment: DeploymentDep, access: CurrentAccess) -> WhoAmI:
    """The calling client's name, role and domain."""
    client = await call(deployment, lambda: clients.whoami(deployment, access=access), short=True)
    return WhoAmI(name=client.name, role=client.role, domain=client.domain)


@router.post(
    "/pseudonymise",
    name="pseudonymise",
    openapi_extra=logged_as(Action.PSEUDONYMISE),
    response_model=PseudonymiseResponse,
    tags=["partner"],
)
async def pseudonymise(
    request: Request,
    body: PseudonymiseRequest,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
) -> PseudonymiseResponse:
    """Pseudonymise up to 100 000 values of one kind into the client's domain, in order; an
    invalid value gets `null` and an entry in `errors` (its index and code, never the value)."""
    access = access_with(request, body.purpose or purpose, required=True)
    if len(body.values) > deployment.settings.max_batch_values:
        raise InvalidRequest(
            f"at most {deployment.settings.max_batch_values} values per call",
            code="too_many_values",
        )
    wanted = ValuesCall(
        access, body.domain or client.domain or "", body.kind, body.values, body.register_subjects
    )
    if len(body.values) <= SHORT_CALL_VALUES:
        results = await pseudonymise_grouped(deployment, wanted)
    else:
        results = await call(
            deployment, functools.partial(pseudonymise_one, deployment, wanted), short=False
        )
    return PseudonymiseResponse(**batch_results(results))


def _job(job: JobRecord) -> JobOut:
    return JobOut(
        id=job.id,
        state=job.state,
        domain=job.domain,
        rows_in=job.rows_in,
        rows_out=job.rows_out,
        rows_rejected=job.rows_rejected,
        error_code=job.error_code,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


@router.post(
    "/files",
    name="tokenise_file",
    status_code=202,
    response_model=JobOut,
    tags=["partner"],
    openapi_extra=logged_as(
        Action.TOKENISE_FILE,
        requestBody={
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "column": {"type": "string", "example": "card=card"},
                            "keep": {"type": "string", "example": "amount,store"},
                        },
                    }
                }
            }
        },
    ),
)
async def upload_file(
    request: Request,
    deployment: DeploymentDep,
    client: CurrentClient,
    purpose: PurposeHeader = None,
    column: Annotated[list[str] | None, Query(description="NAME=KIND, repeated")] = None,
    keep: Annotated[str, Query(description="other columns to keep, comma-separated")] = "",
    delimiter: DelimiterQuery = None,
    encoding: EncodingQuery = "utf-8",
    register: bool = True,
) -> JobOut:
    """Tokenise a CSV file (multipart field `file`; options as query parameters or as form
    fields sent before the file). The file is tokenised as it is received and never stored;
    the job is finished when this answers, and its outputs are fetched from `/v1/jobs/{id}`."""
    options: dict[str, Any] = {
        "column": list(column or []),
        "keep": keep,
        "purpose": purpose,
        "delimiter": delimiter,
        "encoding": encoding,
    }

    def on_field(name: str, value: str) -> None:
        if name == "column":
            options["column"].append(value)
        elif name in ("keep", "purpose", "delimiter", "encoding"):
            options[name] = value

    def on_file() -> Callable[[IO[bytes]], JobRecord]:
        # The options are complete here: form fields come before the file part.
        access = access_with(request, options["purpose"], required=True)
        return lambda stream: run_file_job(
            deployment,
            access=access,
            stream=stream,
            domain=client.domain or "",
            columns=options["column"],
            keep=[k.strip() for k in options["keep"].split(",") if k.strip()],
            delimiter=options["delimiter"],
            encoding=options["encoding"],
            register=register,
            job_id=opened,
        )

    held = held_for(request, deployment)
    # A held upload's work starts once it has arrived: its job is listed from the start all
    # the same, so that an upload cut off by a crash shows as failed.
    opened = None
    if held is not None:
        opened = await run_in_threadpool(
            open_file_job, deployment, access=request.state.access, domain=client.domain or ""
        )
    try:
        job = await stream_multipart(
            request.headers.get("content-type", ""),
            paced(request.stream(), deployment.settings),
            on_field,
            on_file,
            held,
        )
    except BaseException as error:
        if opened is not None:  # the job's own failure, if it ran, was recorded by it
            code = error.code if isinstance(error, TiersError) else "internal"
            await run_in_threadpool(fail_file_job, deployment, opened, code)
        raise
    return _job(job)


@router.get(
    "/jobs",
    name="job_read",
    openapi_extra=logged_as(Action.JOB_READ),
    response_model=list[JobOut],
    tags=["partner"],
)
def jobs(deployment: DeploymentDep, access: CurrentAccess) -> list[JobOut]:
    """The client's own jobs, newest first (an upload cut off by a crash shows as failed)."""
    return [_job(job) for job in list_jobs(deployment, access=access)]


@router.get(
    "/jobs/{job_id}",
    name="job_status",
    openapi_extra=logged_as(Action.JOB_STATUS),
    response_model=JobOut,
    tags=["partner"],
)
def job(job_id: str, deployment: DeploymentDep, access: CurrentAccess) -> JobOut:
    """State and counts of one of the client's jobs."""
    return _job(get_job(deployment, access=access, job_id=job_id))


@router.delete(
    "/jobs/{job_id}",
    name="job_delete",
    openapi_extra=logged_as(Action.JOB_DELETE),
    response_model=JobOut,
    tags=["partner"],
)
def remove_job(job_id: str, deployment: DeploymentDep, access: DataAccess) -> JobOut:
    """Delete a finished job's output and rejects files (once fetched; otherwise they are
    deleted `TIERS_JOB_RETENTION_DAYS` after the job finished). The job stays listed as
    `deleted`; a running job is answered 409 `job_running`."""
    return _job(delete_job(deployment, access=access, job_id=job_id))


def _download(
    deployment: Any, access: Any, job_id: str, which: Literal["output", "rejects"]
) -> CsvDownload:
    handle = job_file(deployment, access=access, job_id=job_id, which=which)
    return CsvDownload(handle, f"{job_id}-{which}.csv")


@router.get(
    "/jobs/{job_id}/output",
    name="job_download",
    openapi_extra=logged_as(Action.JOB_DOWNLOAD),
    tags=["partner"],
    response_class=CsvDownload,
    responses=JSON_ERRORS,
)
def job_output(job_id: str, deployment: DeploymentDep, access: DataAccess) -> CsvDownload:
    """The tokenised file (streamed)."""
    return _download(deployment, access, job_id, "output")


@router.get(
    "/jobs/{job_id}/rejects",
    name="job_rejects",
    openapi_extra=logged_as(Action.JOB_DOWNLOAD),
    tags=["partner"],
    response_class=CsvDownload,
    responses=JSON_ERRORS,
)
def job_rejects(job_id: str, deployment: DeploymentDep, access: DataAccess) -> CsvDownload:
    """The rejected rows as `line,column,code` (streamed)."""
    return _download(deployment, access, job_id, "rejects")
