"""``tiers-client``: a partner's daily commands against a remote `tiers`.

The service's address comes from ``--url`` or ``TIERS_URL``; the API key from ``TIERS_API_KEY``
or ``--api-key-file`` (never from the command line, where other users of the machine could read
it); the purpose from ``--purpose`` or ``TIERS_PURPOSE``. Errors are one line on standard error,
``error: message [code]``, with exit status 1; rows or values refused give exit status 2.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from tiers_client import Client, __version__
from tiers_client._blind_file import BlindFileError
from tiers_client._extras import MissingExtra
from tiers_client._parquet import ParquetError
from tiers_client._transfer import Progress as OnProgress
from tiers_client.blind import BlindSetupError, pinned_key
from tiers_client.errors import TiersError
from tiers_client.models import BlindKeys, ValueRefused

__all__ = ["main"]

T = TypeVar("T")
EXIT_ERROR, EXIT_REFUSED = 1, 2
_err = Console(stderr=True, highlight=False)
_BATCH = 10_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiers-client", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tiers-client {__version__}")
    parser.add_argument("--url", default=os.environ.get("TIERS_URL"), help="[env: TIERS_URL]")
    parser.add_argument("--api-key-file", type=Path, help="default: env TIERS_API_KEY")
    parser.add_argument("--purpose", default=os.environ.get("TIERS_PURPOSE"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("whoami", help="who the key belongs to")
    pseudo = commands.add_parser("pseudonymise", help="one pseudonym per value, in order")
    pseudo.add_argument("--kind", required=True, help="card, email, phone or person")
    pseudo.add_argument("values", nargs="*", help="none: one per line on standard input")
    pseudo.add_argument(
        "--blind", action="store_true", help="blind mode: send only blinded elements"
    )
    _pin_option(pseudo)
    tok = commands.add_parser(
        "tokenise", help="tokenise a CSV or Parquet file: upload, wait, download"
    )
    tok.add_argument("source", type=Path)
    tok.add_argument("-o", "--output", type=Path, required=True)
    tok.add_argument("--column", action="append", required=True, help="NAME=KIND, repeated")
    tok.add_argument("--keep", default="", help="other columns to keep, comma-separated")
    tok.add_argument("--rejects", type=Path)
    tok.add_argument(
        "--part-mb",
        type=float,
        help="send in parts of this size: a dropped connection costs a part",
    )
    tok.add_argument("--resume", metavar="JOB", help="go on with a job in parts left half-way")
    _file_options(tok)
    keys = commands.add_parser(
        "blind-keys", help="your domain's blind-mode public keys and normalisation, as JSON"
    )
    keys.add_argument("--domain", help="default: your key's domain")
    blind = commands.add_parser(
        "blind-tokenise",
        help="tokenise a CSV or Parquet file here in blind mode: only blinded elements are sent",
    )
    blind.add_argument("source", type=Path)
    blind.add_argument("-o", "--output", type=Path, required=True)
    blind.add_argument("--column", action="append", required=True, help="NAME=KIND, repeated")
    blind.add_argument("--keep", default="", help="other columns to keep, comma-separated")
    blind.add_argument("--rejects", type=Path)
    _pin_option(blind)
    _file_options(blind)
    exchange = commands.add_parser("exchange", help="send an exchange file to the hub")
    exchange.add_argument("source", type=Path)
    exchange.add_argument("--type", required=True, dest="exchange_type")
    _file_options(exchange)
    inbox = commands.add_parser("inbox", help="deliveries in your inbox")
    inbox_commands = inbox.add_subparsers(dest="inbox_command", required=True)
    listing = inbox_commands.add_parser("list")
    listing.add_argument("--all", action="store_true", help="acknowledged ones too")
    listing.add_argument("--json", action="store_true")
    get = inbox_commands.add_parser("get")
    get.add_argument("delivery")
    get.add_argument("-o", "--output", type=Path, required=True)
    ack = inbox_commands.add_parser("ack")
    ack.add_argument("delivery")
    return parser


def _pin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--public-key",
        help="the domain's public element the proofs must hold against, as --public-key=KEY "
        "(default: the one the service publishes)",
    )


def _file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delimiter", help="default: found from the header (, ; tab |)")
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "cp1252", "latin-1"])


def _client(args: argparse.Namespace) -> Client:
    if not args.url:
        raise SystemExit(_fail("the service's address is missing: --url or TIERS_URL", "no_url"))
    if args.api_key_file is not None:
        key = args.api_key_file.read_text(encoding="utf-8").strip()
    else:
        key = os.environ.get("TIERS_API_KEY", "").strip()
    if not key:
        raise SystemExit(_fail("no API key: set TIERS_API_KEY or --api-key-file", "no_api_key"))
    return Client(args.url, key, purpose=args.purpose)


def _fail(message: str, code: str) -> int:
    _err.print(f"error: {message} [{code}]", markup=False)
    return EXIT_ERROR


def _bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=_err, disable=not _err.is_terminal, transient=True,
    )  # fmt: skip


def _with_progress(name: str, run: Callable[[OnProgress], T]) -> T:
    """``run`` given a progress callback that moves a bar named ``name`` (on a terminal)."""
    with _bar() as bar:
        task = bar.add_task(name, total=None)
        return run(lambda done, total: bar.update(task, completed=done, total=total))


def _stdin_values() -> Iterator[str]:
    for number, raw in enumerate(sys.stdin.buffer):
        line = raw.rstrip(b"\n").rstrip(b"\r")
        yield (line.removeprefix(codecs.BOM_UTF8) if number == 0 else line).decode(
            "utf-8", "surrogateescape"
        )


def _pseudonymise(tiers: Client, args: argparse.Namespace) -> int:
    values: Iterator[str] = iter(args.values) if args.values else _stdin_values()
    refused = False
    public_key = pinned_key(args.public_key)
    while batch := [value for _, value in zip(range(_BATCH), values, strict=False)]:
        lines = []
        found = (
            tiers.blind_pseudonymise(args.kind, batch, public_key=public_key)
            if args.blind
            else tiers.pseudonymise(args.kind, batch)
        )
        for result in found:
            refused |= isinstance(result, ValueRefused)
            lines.append(f"error:{result.code}" if isinstance(result, ValueRefused) else result)
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_REFUSED if refused else 0


def _tokenise(tiers: Client, args: argparse.Namespace) -> int:
    result = _with_progress(args.source.name, lambda progress: tiers.tokenise_file(
        args.source, args.output, columns=args.column,
        keep=[k.strip() for k in args.keep.split(",") if k.strip()], rejects=args.rejects,
        delimiter=args.delimiter, encoding=args.encoding, progress=progress,
        part_bytes=int(args.part_mb * 1024 * 1024) if args.part_mb else None,
        resume=args.resume,
    ))  # fmt: skip
    job = result.job
    _err.print(
        f"{job.rows_in} rows read, {job.rows_out} written to {result.output}, "
        f"{job.rows_rejected} rejected (see {result.rejects})",
        markup=False,
    )
    return EXIT_REFUSED if job.rows_rejected else 0


def _blind_tokenise(tiers: Client, args: argparse.Namespace) -> int:
    public_key = pinned_key(args.public_key)
    report = _with_progress(args.source.name, lambda progress: tiers.blind_tokenise_file(
        args.source, args.output, columns=args.column,
        keep=[k.strip() for k in args.keep.split(",") if k.strip()], rejects=args.rejects,
        delimiter=args.delimiter, encoding=args.encoding, public_key=public_key,
        progress=progress,
    ))  # fmt: skip
    _err.print(
        f"{report.rows_in} rows read, {report.rows_out} written to {report.output}, "
        f"{report.rows_rejected} rejected (see {report.rejects}); only blinded elements were sent",
        markup=False,
    )
    return EXIT_REFUSED if report.rows_rejected else 0


def _exchange(tiers: Client, args: argparse.Namespace) -> int:
    report = _with_progress(args.source.name, lambda progress: tiers.send_exchange(
        args.source, args.exchange_type, delimiter=args.delimiter, encoding=args.encoding,
        progress=progress,
    ))  # fmt: skip
    _err.print(
        f"{report.rows_in} rows read, {report.rows_out} delivered to the hub, "
        f"{report.rows_rejected} rejected",
        markup=False,
    )
    for reject in report.first_rejects:
        _err.print(f"  line {reject.line}: {reject.column or 'row'}: {reject.code}", markup=False)
    return EXIT_REFUSED if report.rows_rejected else 0


def _inbox(tiers: Client, args: argparse.Namespace) -> int:
    if args.inbox_command == "list":
        found = tiers.inbox(include_acked=args.all)
        if args.json:
            rows = [asdict(d) | {"created_at": d.created_at.isoformat()} for d in found]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            fields = ("id", "kind", "name", "rows", "sender", "created_at", "acked")
            sys.stdout.write("\t".join(fields) + "\n")
            for d in found:
                cells = [d.id, d.kind, d.name, str(d.rows), d.sender, d.created_at.isoformat()]
                sys.stdout.write("\t".join([*cells, "yes" if d.acked else "no"]) + "\n")
    elif args.inbox_command == "get":
        tiers.download_delivery(args.delivery, args.output)
        _err.print(f"written to {args.output}", markup=False)
    else:
        tiers.ack(args.delivery)
    return 0


_COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "whoami": lambda tiers, _: _print(asdict(tiers.whoami())),
    "blind-keys": lambda tiers, args: _print(_published(tiers.blind_keys(args.domain))),
    "pseudonymise": _pseudonymise,
    "tokenise": _tokenise,
    "blind-tokenise": _blind_tokenise,
    "exchange": _exchange,
    "inbox": _inbox,
}


def _published(keys: BlindKeys) -> dict[str, Any]:
    """The keys as the service publishes them: each element in unpadded base64url."""
    public = {
        str(version): base64.urlsafe_b64encode(element).rstrip(b"=").decode("ascii")
        for version, element in keys.public.items()
    }
    return asdict(keys) | {"public": public}


def _print(record: dict[str, Any]) -> int:
    sys.stdout.write(json.dumps(record) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        with _client(args) as tiers:
            status = _COMMANDS[args.command](tiers, args)
    except TiersError as error:
        status = _fail(error.message, error.code)
    except (ParquetError, BlindFileError, BlindSetupError, MissingExtra) as error:
        status = _fail(str(error), error.code)
    except OSError as error:  # a local file: its name, not its content
        status = _fail(f"{error.strerror or type(error).__name__}: {error.filename}", "local")
    except Exception as error:  # noqa: BLE001 - the network, the server: one clear line
        status = _fail(f"{type(error).__name__}; nothing was completed", "internal")
    raise SystemExit(status)
