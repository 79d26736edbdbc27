"""Commands for exchanges, inboxes, campaigns and withdrawals."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from audit import Action
from errors import NotFound
from tiers import campaigns, exchanges, inbox
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
from tiers.cli._output import (
    AsJson,
    Format,
    err_console,
    out_console,
    print_record,
    print_rows,
)

__all__ = ["campaign_app", "exchange_app", "inbox_app", "withdraw"]

exchange_app = typer.Typer(
    help="Partner files to the hub, in hub linking keys.", no_args_is_help=True
)
inbox_app = typer.Typer(help="Deliveries waiting for a partner or the hub.", no_args_is_help=True)
campaign_app = typer.Typer(
    help="Campaigns from the hub to each customer's SG.", no_args_is_help=True
)


@exchange_app.command("send")
@handles_errors
def exchange_send(
    source: Annotated[Path, typer.Argument(metavar="IN.csv")],
    domain: Annotated[str, typer.Option(help="the sending partner")],
    exchange_type: Annotated[str, typer.Option("--type", help="purchases, points, customers…")],
    delimiter: Delimiter = None,
    encoding: Encoding = "utf-8",
    file_format: FileFormat = None,
    purpose: Purpose = None,
) -> None:
    """Send a partner file to the hub's inbox; rejected rows go back to the partner's inbox."""
    access = operator(purpose)
    with deployment(access, Action.EXCHANGE_SEND, purpose=purpose) as dep:
        if not source.exists():
            raise NotFound(f"no such file: {source}", code="no_such_file")
        report = exchanges.send_exchange(
            dep,
            access=access,
            domain=domain,
            exchange_type=exchange_type,
            source=source,
            delimiter=delimiter,
            encoding=encoding,
            file_format=file_format,
        )
    err_console.print(
        f"{counted(report.rows_in, 'row')} read, {report.rows_out} delivered to the hub, "
        f"{report.rows_rejected} rejected",
        markup=False,
    )
    for reject in report.first_rejects:
        err_console.print(
            f"  line {reject.line}: {reject.column or 'row'}: {reject.code}", markup=False
        )
    if report.rows_rejected:
        raise typer.Exit(EXIT_REJECTS)


@inbox_app.command("list")
@handles_errors
def inbox_list(
    domain: Annotated[str, typer.Option(help="whose inbox")],
    all_: Annotated[bool, typer.Option("--all", help="acknowledged ones too")] = False,
    purpose: Purpose = None,
    output: Format = None,
    as_json: AsJson = False,
) -> None:
    """Deliveries in an inbox, oldest first."""
    access = operator(purpose)
    with deployment(access, Action.INBOX_READ, purpose=purpose) as dep:
        found = inbox.list_inbox(dep, access=access, domain=domain, include_acked=all_)
    print_rows(
        ("id", "kind", "name", "rows", "from", "created", "acknowledged"),
        [
            (
                d.id,
                d.kind,
                d.name,
                str(d.rows),
                d.sender,
                d.created_at.isoformat(timespec="seconds"),
                d.acked_at.isoformat(timespec="seconds") if d.acked_at else "",
            )
            for d in found
        ],
        output,
        as_json=as_json,
    )


@inbox_app.command("get")
@handles_errors
def inbox_get(
    delivery: str,
    domain: Annotated[str, typer.Option(help="whose inbox")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="default: stdout")] = None,
    purpose: Purpose = None,
) -> None:
    """Write a delivery's CSV to a file or to standard output."""
    access = operator(purpose)
    with deployment(access, Action.INBOX_GET, purpose=purpose) as dep:
        handle = inbox.delivery_file(dep, access=access, delivery_id=delivery, domain=domain)
    with handle:
        if output is None:
            shutil.copyfileobj(io.TextIOWrapper(handle, encoding="utf-8"), sys.stdout)
        else:
            with open(output, "wb") as copy:
                shutil.copyfileobj(handle, copy)


@inbox_app.command("ack")
@handles_errors
def inbox_ack(
    delivery: str, domain: Annotated[str, typer.Option(help="whose inbox")], purpose: Purpose = None
) -> None:
    """Acknowledge a delivery (it is purged after the retention period)."""
    access = operator(purpose)
    with deployment(access, Action.INBOX_ACK, purpose=purpose) as dep:
        inbox.ack_delivery(dep, access=access, delivery_id=delivery, domain=domain)
    out_console.print(f"acknowledged {delivery}", markup=False)


@inbox_app.command("purge")
@handles_errors
def inbox_purge(
    older_than: Annotated[int, typer.Option(help="days after acknowledgement")] = 30,
    purpose: Purpose = None,
) -> None:
    """Delete deliveries acknowledged more than N days ago."""
    access = operator(purpose)
    with deployment(access, Action.INBOX_PURGE, purpose=purpose) as dep:
        count = inbox.purge_inbox(dep, access=access, older_than_days=older_than)
    out_console.print(f"purged {counted(count, 'delivery', 'deliveries')}", markup=False)


@campaign_app.command("send")
@handles_errors
def campaign_send(
    name: str,
    keys: Annotated[Path, typer.Option(help="a file of hub linking keys, one per line")],
    purpose: Purpose = None,
    output: Format = None,
    as_json: AsJson = False,
) -> None:
    """Route a list of hub linking keys to each customer's attached SG."""
    access = operator(purpose)
    with deployment(access, Action.CAMPAIGN_SEND, purpose=purpose) as dep:
        if not keys.exists():
            raise NotFound(f"no such file: {keys}", code="no_such_file")
        lines = [line.strip() for line in keys.read_text(encoding="utf-8").splitlines()]
        report = campaigns.send_campaign(
            dep, access=access, name=name, linking_keys=[line for line in lines if line]
        )
    print_record(
        {
            "delivered": report.per_sg,
            "dropped": report.dropped,
            "deliveries": report.deliveries,
        },
        output,
        as_json=as_json,
    )


@handles_errors
def withdraw(
    card: Annotated[str, typer.Argument(help="the customer's card at their SG")],
    domain: Annotated[str, typer.Option(help="the customer's SG")],
    purpose: Purpose = None,
) -> None:
    """A customer leaves the alliance: links removed, hub keys retired, the hub notified."""
    access = operator(purpose)
    with deployment(access, Action.CUSTOMER_WITHDRAW, purpose=purpose) as dep:
        count = exchanges.withdraw_customer(dep, access=access, domain=domain, card=card)
    out_console.print(f"withdrawn; {count} hub keys sent to the hub for erasure", markup=False)
