"""Data commands: ``pseudonymise``, ``tokenise-file`` and the service's file jobs."""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from audit import Action
from errors import InvalidIdentifier
from tiers.cli._common import (
    EXIT_REJECTS,
    Delimiter,
    Encoding,
    FileFormat,
    Purpose,
    counted,
    deployment,
    handles_errors,
    operator,
)
from tiers.cli._output import err_console, out_console
from tiers.files import parse_column_spec, tokenise_file
from tiers.identifiers import get_kind
from tiers.jobs import delete_job, purge_jobs
from tiers.spark import spark_master
from tiers.tokenisation import pseudonymise_values

__all__ = ["job_app", "pseudonymise", "tokenise_file_command"]

job_app = typer.Typer(
    help="File jobs sent to the service: their outputs, deleted when no longer needed.",
    no_args_is_help=True,
)

_CHUNK = 10_000


def _stdin_values() -> Iterator[str]:
    """One value per line of standard input, undecodable lines kept as a marker string."""
    for number, raw in enumerate(sys.stdin.buffer):
        line = raw.rstrip(b"\n").rstrip(b"\r")
        if number == 0:
            line = line.removeprefix(codecs.BOM_UTF8)  # as Windows tools begin a UTF-8 text
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            # A lone surrogate never normalises, so the line is reported, not dropped.
            yield "\udcff"


@handles_errors
def pseudonymise(
    domain: Annotated[str, typer.Option(help="the domain to pseudonymise into")],
    kind: Annotated[str, typer.Option(help="card, email, phone or person")],
    values: Annotated[
        list[str] | None, typer.Argument(help="values; none: one per line on stdin")
    ] = None,
    register: Annotated[bool, typer.Option(help="register the subjects")] = True,
    purpose: Purpose = None,
) -> None:
    """One pseudonym per line, in order; an invalid value prints error:<code> and exit status 2.

    Standard input is read in batches of 10,000 values, each recorded in the access log.
    """
    failed = False
    access = operator(purpose)
    with deployment(access, Action.PSEUDONYMISE, purpose=purpose) as dep:
        get_kind(kind)  # an unknown kind fails before standard input is read
        source: Iterator[str] = iter(values) if values else _stdin_values()
        first = True
        while (chunk := list(islice(source, _CHUNK))) or first:
            first = False
            results = pseudonymise_values(
                dep, access=access, domain=domain, kind=kind, values=chunk, register=register
            )
            lines = []
            for result in results:
                if isinstance(result, InvalidIdentifier):
                    failed = True
                    lines.append(f"error:{result.code}")
                else:
                    lines.append(result)
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
    if failed:
        raise typer.Exit(EXIT_REJECTS)


@handles_errors
def tokenise_file_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="IN.csv", help="the CSV or Parquet file (with Spark: any path Spark reads)"
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="the tokenised CSV to write")],
    domain: Annotated[str, typer.Option(help="the partner domain")],
    column: Annotated[list[str], typer.Option(help="NAME=KIND, once per identifier column")],
    keep: Annotated[str, typer.Option(help="other columns to keep, comma-separated")] = "",
    rejects: Annotated[Path | None, typer.Option(help="default: OUT.rejects.csv")] = None,
    register: Annotated[bool, typer.Option(help="register the subjects")] = True,
    delimiter: Delimiter = None,
    encoding: Encoding = "utf-8",
    file_format: FileFormat = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local (this host's cores) or spark[:MASTER_URL] (default master local[*])"
        ),
    ] = "local",
    purpose: Purpose = None,
) -> None:
    """Replace identifier columns by pseudonyms, streaming; rejected rows go to the rejects file.

    With --engine spark, the rows are read and tokenised by Spark's executors, which open
    the deployment from their own environment; the output is the same, byte for byte.
    """
    show_progress = err_console.is_terminal
    access = operator(purpose)
    with (
        deployment(access, Action.TOKENISE_FILE, purpose=purpose) as dep,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not show_progress,
            transient=True,
        ) as bar,
    ):
        specs = [parse_column_spec(text) for text in column]
        kept = [name for name in (part.strip() for part in keep.split(",")) if name]
        spark = spark_master(engine) is not None
        task = bar.add_task(source.rsplit("/", 1)[-1], total=None)
        report = tokenise_file(
            dep,
            access=access,
            source=source if spark else Path(source),
            output=output,
            domain=domain,
            columns=specs,
            keep=kept,
            rejects=rejects,
            register=register,
            delimiter=delimiter,
            encoding=encoding,
            file_format=file_format,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            engine=engine,
        )
    err_console.print(
        f"{counted(report.rows_in, 'row')} read, {report.rows_out} written to {report.output}, "
        f"{report.rows_rejected} rejected (see {report.rejects})",
        markup=False,
    )
    for reject in report.first_rejects:
        where = f"column {reject.column}" if reject.column else "row"
        err_console.print(f"  line {reject.line}: {where}: {reject.code}", markup=False)
    if report.rows_rejected > len(report.first_rejects):
        err_console.print(f"  … see {report.rejects} for every rejected row", markup=False)
    if report.rows_rejected:
        raise typer.Exit(EXIT_REJECTS)


@job_app.command("delete")
@handles_errors
def job_delete(job: str, purpose: Purpose = None) -> None:
    """Delete a finished job's output and rejects files now (the job stays listed)."""
    access = operator(purpose)
    with deployment(access, Action.JOB_DELETE, purpose=purpose) as dep:
        delete_job(dep, access=access, job_id=job)
    out_console.print(f"deleted the files of job {job}", markup=False)


@job_app.command("purge")
@handles_errors
def job_purge(
    older_than: Annotated[
        int | None,
        typer.Option(min=0, help="days after the job finished [default: TIERS_JOB_RETENTION_DAYS]"),
    ] = None,
    purpose: Purpose = None,
) -> None:
    """Delete the files of every job finished more than N days ago (run it daily)."""
    access = operator(purpose)
    with deployment(access, Action.JOB_PURGE, purpose=purpose) as dep:
        count = purge_jobs(dep, access=access, older_than_days=older_than)
    out_console.print(f"deleted the files of {counted(count, 'job')}", markup=False)
