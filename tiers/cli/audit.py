"""Auditor commands: ``audit log|verify|alerts|checkpoint|export|verify-export|subject|
report|purge``."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from audit import Action, AuditEntry, verify_bundle
from audit.note import VerifierKey
from errors import AuditIntegrityError, InvalidRequest, NotFound
from tiers import alerts, audit_ops, log_views
from tiers.cli._common import Purpose, counted, deployment, handles_errors, operator
from tiers.cli._output import (
    AsJson,
    Format,
    OutputFormat,
    out_console,
    print_rows,
    printable,
    wants_json,
)

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The tamper-evident access log.", no_args_is_help=True)
AUDIT_PURPOSE = "audit"
EXIT_ALERTS = 3


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO date or date-time; naive values are taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(
                f"{option} expects an ISO date or date-time", code="bad_time"
            ) from None
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row(entry: AuditEntry) -> list[str]:
    counts = entry.counts
    outcome = entry.outcome if entry.code is None else f"{entry.outcome}:{entry.code}"
    return [
        str(entry.seq),
        entry.time.isoformat(timespec="seconds"),
        printable(entry.actor),
        printable(entry.role),
        printable(entry.action),
        printable(outcome),
        printable(" ".join(entry.domains)),
        f"{counts.records_in}/{counts.records_out}/{counts.rejected}",
        printable(entry.purpose),
        entry.subject or "",
    ]


_HEADERS = (
    "seq",
    "time",
    "actor",
    "role",
    "action",
    "outcome",
    "domains",
    "in/out/rej",
    "purpose",
    "subject",
)


def _print_entries(
    entries: list[AuditEntry], output: OutputFormat | None, *, as_json: bool
) -> None:
    if wants_json(output, as_json):
        for entry in entries:
            out_console.print(
                json.dumps(entry.as_dict(), sort_keys=True),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return
    print_rows(_HEADERS, [_row(entry) for entry in entries], output)


@audit_app.command("log")
@handles_errors
def audit_log(
    since: Annotated[
        str | None, typer.Option(help="ISO date or date-time (UTC if no zone)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or date-time, exclusive")] = None,
    actor: Annotated[str | None, typer.Option(help="only this actor")] = None,
    action: Annotated[str | None, typer.Option(help="only this action")] = None,
    purpose: Purpose = None,
    output: Format = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="the same as --format json: one object per line")
    ] = False,
) -> None:
    """List entries, oldest first (JSON: one entry per line, as exported)."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_READ, purpose=purpose) as dep:
        entries = audit_ops.read_log(
            dep,
            access=access,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            actor=actor,
            action=action,
        )
    _print_entries(entries, output, as_json=as_json)


@audit_app.command("verify")
@handles_errors
def audit_verify(
    against: Annotated[
        Path | None,
        typer.Option(
            help="a checkpoint (signed note) or export a party kept: prove the log extends it"
        ),
    ] = None,
) -> None:
    """Verify the stored log against its checkpoints, those kept outside the database and the
    witnesses' cosignatures; names the first bad entry when it is not intact."""
    access = operator(AUDIT_PURPOSE)
    kept = _read(against) if against is not None else None
    with deployment(access, Action.AUDIT_VERIFY) as dep:
        if kept is None:
            result = audit_ops.verify_stored(dep, access=access)
        else:
            result = audit_ops.verify_against(dep, access=access, kept=kept)
    out_console.print(result.summary(), markup=False)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}", code="no_such_file") from None


@audit_app.command("log-key")
@handles_errors
def audit_log_key() -> None:
    """The log's verifier key (C2SP vkey), for witnesses' --log-key and for verifiers."""
    access = operator(AUDIT_PURPOSE)
    with deployment(access, Action.AUDIT_LOG_KEY) as dep:
        key = audit_ops.log_key(dep, access=access)
    out_console.print(key, markup=False)


@audit_app.command("alerts")
@handles_errors
def audit_alerts(
    since: Annotated[
        str | None, typer.Option(help="ISO date or date-time; default: 24 hours ago")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or date-time, exclusive")] = None,
    values_per_hour: Annotated[
        int | None,
        typer.Option(min=1, help="default: TIERS_ALERT_VALUES_PER_HOUR"),
    ] = None,
    refusals_per_hour: Annotated[
        int | None,
        typer.Option(min=1, help="default: TIERS_ALERT_REFUSALS_PER_HOUR"),
    ] = None,
    association_refusals_per_hour: Annotated[
        int | None,
        typer.Option(min=1, help="default: TIERS_ALERT_ASSOCIATION_REFUSALS_PER_HOUR"),
    ] = None,
    purpose: Purpose = None,
    output: Format = None,
    as_json: AsJson = False,
) -> None:
    """Signs of a dictionary attack, of key guessing or of probing other partners' cards, per
    actor and hour; exits 3 when there are any (for cron and monitors)."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_ALERTS, purpose=purpose) as dep:
        defaults = alerts.Thresholds.of(dep.settings)
        thresholds = replace(
            defaults,
            values_per_hour=values_per_hour or defaults.values_per_hour,
            refusals_per_hour=refusals_per_hour or defaults.refusals_per_hour,
            association_refusals_per_hour=association_refusals_per_hour
            or defaults.association_refusals_per_hour,
        )
        found = alerts.find_alerts(
            dep,
            access=access,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            thresholds=thresholds,
        )
    if not found and not wants_json(output, as_json):
        out_console.print("no alerts", markup=False)
        return
    print_rows(
        ["hour", "kind", "actor", "observed", "threshold"],
        (
            [a.hour.isoformat(timespec="minutes"), a.kind, a.actor, str(a.observed),
             str(a.threshold)]
            for a in found
        ),
        output,
        as_json=as_json,
    )  # fmt: skip
    if found:
        raise typer.Exit(EXIT_ALERTS)


@audit_app.command("checkpoint")
@handles_errors
def audit_checkpoint() -> None:
    """Sign a checkpoint now, covering every entry."""
    access = operator(AUDIT_PURPOSE)
    with deployment(access, Action.AUDIT_CHECKPOINT) as dep:
        checkpoint = audit_ops.sign_checkpoint(dep, access=access)
    out_console.print(
        f"checkpoint signed: size {checkpoint.tree_size}, root {checkpoint.root.hex()}, "
        f"key {checkpoint.key}",
        markup=False,
    )


@audit_app.command("proof")
@handles_errors
def audit_proof(
    seq: Annotated[int | None, typer.Option(help="prove this entry is in the log")] = None,
    from_size: Annotated[
        int | None, typer.Option(help="prove the checkpoint of this size is a prefix")
    ] = None,
    to_size: Annotated[
        int | None, typer.Option(help="of this checkpoint (default: latest)")
    ] = None,
    purpose: Purpose = None,
) -> None:
    """An inclusion or consistency proof, as JSON, checkable offline against signed checkpoints."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_PROOF, purpose=purpose) as dep:
        proof = audit_ops.prove(dep, access=access, seq=seq, old_size=from_size, new_size=to_size)
    sys.stdout.write(json.dumps(proof.as_dict(), indent=1, sort_keys=True) + "\n")


@audit_app.command("export")
@handles_errors
def audit_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="the bundle to write (JSON)")],
    purpose: Purpose = None,
) -> None:
    """Write a self-contained bundle: entries, signed checkpoints and the public key."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_EXPORT, purpose=purpose) as dep:
        key = audit_ops.export_log(dep, access=access, output=output)
    out_console.print(f"exported to {output}; checkpoint key {key}", markup=False)


@audit_app.command("verify-export")
@handles_errors
def audit_verify_export(
    bundle: Annotated[Path, typer.Argument(help="an exported bundle")],
    key: Annotated[
        str | None, typer.Option(help="expected checkpoint key fingerprint (ed25519:…)")
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(help="a witness's verifier key whose cosignature is required (repeat)"),
    ] = None,
    quorum: Annotated[
        int | None, typer.Option(min=1, help="how many of the witnesses (default: all)")
    ] = None,
) -> None:
    """Verify an exported bundle offline: no database, no master key."""
    data = _read(bundle)
    try:
        witnesses = [VerifierKey.parse(text) for text in witness or []]
    except AuditIntegrityError:
        raise InvalidRequest("--witness takes a witness's verifier key", code="bad_key") from None
    result = verify_bundle(data, expected_key=key, witnesses=witnesses, quorum=quorum)
    out_console.print(result.summary(), markup=False)
    if key is None:
        out_console.print(
            f"note: the bundle's own key {result.key} was trusted; pass --key to pin the "
            "published fingerprint",
            markup=False,
        )


@audit_app.command("subject")
@handles_errors
def audit_subject(
    value: Annotated[
        str,
        typer.Argument(
            help="the customer's identifier (kept in memory only), or its pseudonym in the domain"
        ),
    ],
    domain: Annotated[str, typer.Option(help="the domain whose rules normalise the value")],
    kind: Annotated[str, typer.Option(help="card, email, phone or person")],
    purpose: Purpose = None,
    output: Format = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="the same as --format json: one object per line")
    ] = False,
) -> None:
    """Entries that concern one customer, found by subject reference (JSON: one entry per
    line, as exported)."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_SUBJECT, purpose=purpose) as dep:
        entries = audit_ops.lookup_subject(
            dep, access=access, domain=domain, kind=kind, value=value
        )
    _print_entries(entries, output, as_json=as_json)


@audit_app.command("report")
@handles_errors
def audit_report(
    since: Annotated[str, typer.Option(help="ISO date or date-time")],
    until: Annotated[str, typer.Option(help="ISO date or date-time, exclusive")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the HTML file to write")],
    purpose: Purpose = None,
) -> None:
    """A static HTML access report: calls and identifiers processed per day, actor, action,
    domain and purpose, refusals, alerts, changes, charts."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_REPORT, purpose=purpose) as dep:
        start, end = parse_time(since, "--since"), parse_time(until, "--until")
        assert start is not None and end is not None
        result = log_views.write_report(dep, access=access, since=start, until=end, output=output)
    out_console.print(
        f"report written to {output}: {counted(result.entries, 'call', 'calls')}; "
        f"{result.verification}",
        markup=False,
    )


@audit_app.command("purge")
@handles_errors
def audit_purge(
    older_than: Annotated[
        int | None, typer.Option(help="days to keep (default TIERS_AUDIT_RETENTION_DAYS, 365)")
    ] = None,
    purpose: Purpose = None,
) -> None:
    """Delete entries older than the retention period, keeping a signed checkpoint for them."""
    access = operator(purpose)
    with deployment(access, Action.AUDIT_PURGE, purpose=purpose) as dep:
        result = audit_ops.purge_log(dep, access=access, older_than_days=older_than)
    if result.purged:
        out_console.print(
            f"purged {counted(result.purged, 'entry', 'entries')} "
            f"(through seq {result.through_seq}) "
            f"older than {result.cutoff.isoformat()}",
            markup=False,
        )
    else:
        out_console.print(f"nothing older than {result.cutoff.isoformat()} to purge", markup=False)
