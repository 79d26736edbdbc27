"""Partner data routes: batch pseudonymisation and file jobs."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

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
    CompleteRequest,
    DelimiterQuery,
    EncodingQuery,
    FileJobRequest,
    JobOut,
    PartOut,
    PseudonymiseRequest,
    PseudonymiseResponse,
    WhoAmI,
    batch_results,
)
from api.upload import held_for, paced, stream_multipart
from audit import Action
from errors import InvalidRequest, TiersError
from tiers import clients
from tiers.job_runs import (
    JobOptions,
    complete_job,
    job_progress,
    send_part,
    start_job,
    stream_to_job,
)
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


def _job(job: JobRecord, progress: dict[str, int] | None = None) -> JobOut:
    """A job as answered; a running job's counts so far from its runner (``progress``)."""
    progress = progress or {}
    return JobOut(
        id=job.id,
        state=job.state,
        domain=job.domain,
        rows_in=progress.get("rows_in", job.rows_in),
        rows_out=job.rows_out,
        rows_rejected=progress.get("rows_rejected", job.rows_rejected),
        error_code=job.error_code,
        created_at=job.created_at,
        finished_at=job.finished_at,
        bytes_received=progress.get("bytes_received"),
        parts=progress.get("parts"),
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
    the job is finished when this answers, and its outputs are fetched from `/v1/jobs/{id}`.

    With a JSON body instead (`FileJobRequest`), the call opens a job whose file is then sent
    in parts (`PUT /v1/files/{id}/parts/{n}`, then `POST /v1/files/{id}/complete`)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return await _open_parts_job(request, deployment, client.domain or "", purpose)
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
        chosen = JobOptions(
            columns=options["column"],
            keep=[k.strip() for k in options["keep"].split(",") if k.strip()],
            delimiter=options["delimiter"],
            encoding=options["encoding"],
            register=register,
        )
        if own_process:
            return functools.partial(_streamed_job, deployment, access, client, chosen, opened)
        return lambda stream: run_file_job(
            deployment, access=access, stream=stream, domain=client.domain or "",
            columns=chosen.columns, keep=chosen.keep, delimiter=chosen.delimiter,
            encoding=chosen.encoding, register=register, job_id=opened,
        )  # fmt: skip

    # A job in a process of its own holds its upload there (tiers._job_runner), not here.
    own_process = _in_own_process(request, deployment)
    held = None if own_process else held_for(request, deployment)
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


def _in_own_process(request: Request, deployment: Any) -> bool:
    """Whether an upload is large enough (or of unknown size) to run in a process of its own,
    on the parallel path (``TIERS_FILE_JOB_PROCESS_BYTES``)."""
    declared = request.headers.get("content-length", "")
    threshold: int = deployment.settings.file_job_process_bytes
    return not declared.isdigit() or int(declared) >= threshold


def _streamed_job(
    deployment: Any, access: Any, client: Any, options: JobOptions, opened: str | None,
    stream: IO[bytes],
) -> JobRecord:  # fmt: skip
    """A whole upload given to a job in its own process (:mod:`tiers.job_runs`)."""
    domain = client.domain or ""
    job = start_job(deployment, access=access, domain=domain, options=options, job_id=opened)
    return stream_to_job(deployment, access=access, job_id=job.id, stream=stream)


async def _open_parts_job(
    request: Request, deployment: Any, domain: str, purpose: str | None
) -> JobOut:
    try:
        body = FileJobRequest.model_validate_json(await request.body())
    except ValidationError as error:
        raise InvalidRequest(_first_problem(error), code="invalid_request") from None
    access = access_with(request, body.purpose or purpose, required=True)
    options = JobOptions(
        columns=body.column, keep=body.keep, delimiter=body.delimiter, encoding=body.encoding,
        register=body.register_subjects,
    )  # fmt: skip
    job = await run_in_threadpool(
        functools.partial(start_job, deployment, access=access, domain=domain, options=options)
    )
    return _job(job)


def _first_problem(error: ValidationError) -> str:
    """The first problem of a body that does not validate, naming its field, never its value."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


@router.put(
    "/files/{job_id}/parts/{number}",
    name="file_part",
    openapi_extra=logged_as(
        Action.TOKENISE_FILE,
        requestBody={"content": {"application/octet-stream": {"schema": {"type": "string"}}}},
    ),
    response_model=PartOut,
    tags=["partner"],
)
async def file_part(
    job_id: str,
    number: Annotated[int, Path(ge=1, le=1_000_000)],
    request: Request,
    deployment: DeploymentDep,
    access: DataAccess,
    digest: Annotated[
        str | None,
        Header(alias="Content-Digest", description="RFC 9530: sha-256=:BASE64:, checked"),
    ] = None,
) -> PartOut:
    """Send part `number` (from 1, in order) of a job opened with a JSON body. The part is
    tokenised as it arrives; a part sent again after a lost answer is recognised (same number
    and content) and answered `applied: false`; another content under its number is refused
    (409 `part_conflict`)."""
    data = await request.body()
    receipt = await run_in_threadpool(
        functools.partial(
            send_part, deployment, access=access, job_id=job_id, number=number, data=data,
            sha256=_sha256_of(digest),
        )
    )  # fmt: skip
    return PartOut(part=receipt.part, applied=receipt.applied)


def _sha256_of(digest: str | None) -> str | None:
    """The SHA-256 of an RFC 9530 ``Content-Digest`` (as hex), None when there is none."""
    if digest is None:
        return None
    for item in digest.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "sha-256":
            try:
                raw = base64.b64decode(value.strip().strip(":"), validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 32:
                raise InvalidRequest("Content-Digest: a malformed sha-256", code="invalid_request")
            return raw.hex()
    return None


@router.post(
    "/files/{job_id}/complete",
    name="file_complete",
    openapi_extra=logged_as(Action.TOKENISE_FILE),
    response_model=JobOut,
    tags=["partner"],
)
async def file_complete(
    job_id: str, body: CompleteRequest, deployment: DeploymentDep, access: DataAccess
) -> JobOut:
    """End a job's file after part `parts`: answered once the job has ended, `done` with its
    outputs in place (or with the error that failed it)."""
    job = await run_in_threadpool(
        functools.partial(complete_job, deployment, access=access, job_id=job_id, parts=body.parts)
    )
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
    """State and counts of one of the client's jobs; while a job in its own process runs, the
    bytes and parts received and the rows read and rejected so far."""
    found = get_job(deployment, access=access, job_id=job_id)
    return _job(found, job_progress(found))


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
