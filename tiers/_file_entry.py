"""What a tokenised file leaves in the database, whichever engine read it (this process,
:mod:`tiers.files`, or Spark's executors, :mod:`tiers.spark`): its subjects registered, in the
file's one transaction, and its one access-log entry, indexed under every customer it touched.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime

from sqlalchemy import Connection

from audit import Action, Counts
from errors import InvalidFile
from tiers import _subject_index as subject_index
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.storage import bulk_load, sorted_inserts
from tiers.tokenisation import Registrar, Tokeniser, registrar_for

__all__ = ["file_registrar", "recorded"]


def file_registrar(
    stack: ExitStack, deployment: Deployment, connection: Connection, tokeniser: Tokeniser,
    now: datetime, *, register: bool,
) -> Registrar:  # fmt: skip
    """Who registers the file's subjects (and enrols its cards), in ``connection``. A
    registering load takes a larger page cache, and holds its inserts to make them in key
    order once the whole file is read (both entered on ``stack``)."""
    held = None
    if register:
        stack.enter_context(bulk_load(connection))
        held = stack.enter_context(sorted_inserts(connection))
    # Known rows looked up rather than registered again: faster on SQLite, slower on
    # PostgreSQL, which registers through COPY (bench/HISTORY.md).
    return registrar_for(
        deployment, connection, tokeniser, now, held=held, skip_known=deployment.embedded
    )


def recorded(
    deployment: Deployment, access: Access, connection: Connection, registrar: Registrar,
    touched: subject_index.Gathered, *, domain: str, counts: Counts, columns: int, kept: int,
    engine: str, origin: str = "file",
) -> int:  # fmt: skip
    """The file's subjects registered and its entry written, indexed under every customer it
    touched (:mod:`tiers._subject_index`); its identifier cells charged to the client's budget.
    The entry names the engine when it is not this process (``spark``), and what was read when
    it is not a file (``dataframe``). Returns the count of registrations."""
    if counts.records_in == 0:
        raise InvalidFile("the file has a header but no data rows", code="no_rows")
    registrar.finish()
    identifiers = counts.records_in * columns
    detail: dict[str, str | int] = {
        "registered": registrar.registered,
        "columns": columns,
        "kept": kept,
        "identifiers": identifiers,
    }
    if engine != "local":
        detail["engine"] = engine
    if origin != "file":
        detail["input"] = origin
    entry = deployment.record(
        connection, access, action=Action.TOKENISE_FILE, domains=[domain], counts=counts,
        detail=detail,
    )  # fmt: skip
    touched.seal()
    subject_index.index_blocks(connection, entry, touched.blocks)
    deployment.budget.charge(access, identifiers)
    return registrar.registered
