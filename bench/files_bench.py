"""File tokenisation: tiers against the ceiling and against peers, on the same file.

- Ceiling: the cryptographic work alone, in memory, over the same identifiers: per identifier
  the two HMAC-SHA256 of the two-layer scheme, with key pads hashed once (``hashlib`` copies).
  Single core, and all cores (forked processes over slices).
- Peers, end to end (CSV in, CSV out), each doing less than tiers (one HMAC per identifier, no
  normalisation, no validation, no rejects file, no audit): the standard ``csv`` module +
  ``hmac``; pandas ``read_csv`` + ``hmac`` + ``to_csv``; Microsoft Presidio's anonymizer engine
  with its ``hash`` operator (salted SHA-256, fixed salt so that it is a pseudonym).
- tiers: the core function in process, with and without registering subjects, and the
  ``tiers tokenise-file`` command in a child process, whose peak memory (with its workers) is
  sampled.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from bench.data import IDENTIFIER_COLUMNS, identifiers

KEY_1 = hashlib.sha256(b"bench base key").digest()
KEY_2 = hashlib.sha256(b"bench domain key").digest()

_IDS: list[tuple[str, str, str]] = []


def _pads(key: bytes) -> tuple[Any, Any]:
    padded = key.ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in padded)),
        hashlib.sha256(bytes(b ^ 0x5C for b in padded)),
    )


def _ceiling_slice(bounds: tuple[int, int]) -> int:
    (i1, o1), (i2, o2) = _pads(KEY_1), _pads(KEY_2)
    for row in _IDS[bounds[0] : bounds[1]]:
        for value in row:
            inner = i1.copy()
            inner.update(value.encode())
            outer = o1.copy()
            outer.update(inner.digest())
            base = outer.digest()
            inner = i2.copy()
            inner.update(base)
            outer = o2.copy()
            outer.update(inner.digest())
            outer.digest()
    return bounds[1] - bounds[0]


def ceiling(path: Path, workers: int) -> float:
    """Rows per second of the bare two-layer HMAC work over the file's identifiers."""
    global _IDS  # noqa: PLW0603 - inherited by the forked workers
    _IDS = identifiers(path)
    rows = len(_IDS)
    started = time.perf_counter()
    if workers == 1:
        _ceiling_slice((0, rows))
    else:
        step = -(-rows // (workers * 4))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_ceiling_slice, [(n, min(n + step, rows)) for n in range(0, rows, step)])
    elapsed = time.perf_counter() - started
    _IDS = []
    return rows / elapsed


def _mac(value: str) -> str:
    return hmac.new(KEY_1, value.encode(), "sha256").hexdigest()


def _rewrite(path: Path, output: Path, transform: Callable[[list[str]], list[str]]) -> int:
    """CSV in, CSV out: the header as is, each row through ``transform``."""
    with (
        open(path, newline="", encoding="utf-8") as source,
        open(output, "w", newline="", encoding="utf-8") as target,
    ):
        reader = csv.reader(source)
        writer = csv.writer(target)
        writer.writerow(next(reader))
        rows = 0
        for row in reader:
            writer.writerow(transform(row))
            rows += 1
    return rows


def peer_csv(path: Path, output: Path) -> int:
    def transform(row: list[str]) -> list[str]:
        row[0], row[1], row[2] = _mac(row[0]), _mac(row[1]), _mac(row[2])
        return row

    return _rewrite(path, output, transform)


def peer_pandas(path: Path, output: Path) -> int:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in IDENTIFIER_COLUMNS:
        frame[column] = [_mac(value) for value in frame[column]]
    frame.to_csv(output, index=False)
    return len(frame)


def peer_presidio(path: Path, output: Path) -> int:
    engine = AnonymizerEngine()
    operators = {
        name.upper(): OperatorConfig("hash", {"hash_type": "sha256", "salt": KEY_1})
        for name in IDENTIFIER_COLUMNS
    }

    def transform(row: list[str]) -> list[str]:
        text = f"{row[0]},{row[1]},{row[2]}"
        first, second = len(row[0]), len(row[0]) + 1 + len(row[1])
        spans = [
            RecognizerResult("CARD", 0, first, 1.0),
            RecognizerResult("EMAIL", first + 1, second, 1.0),
            RecognizerResult("PHONE", second + 1, len(text), 1.0),
        ]
        result = engine.anonymize(text=text, analyzer_results=spans, operators=operators)
        return [*result.text.split(",", 2), *row[3:]]

    return _rewrite(path, output, transform)


def timed(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    rows = run()
    return rows / (time.perf_counter() - started)


def tiers_in_process(
    path: Path, output: Path, *, home: Path, database_url: str | None, register: bool
) -> float:
    """Rows per second of tiers.files.tokenise_file in this process (fresh home)."""
    from tiers.admin import add_domain, initialise  # noqa: PLC0415 - after the peers' runs
    from tiers.auditing import Access  # noqa: PLC0415
    from tiers.deployment import Deployment  # noqa: PLC0415
    from tiers.files import ColumnSpec, tokenise_file  # noqa: PLC0415
    from tiers.settings import Settings  # noqa: PLC0415

    settings = Settings(home=home, database_url=database_url, argon2_profile="test")
    access = Access("bench", "operator", "benchmark", datetime.now(UTC))
    initialise(settings, access=access)
    deployment = Deployment.open(settings)
    try:
        if "casino" not in {d.name for d in _domains(deployment, access)}:
            add_domain(deployment, access=access, name="casino", role="partner")
        started = time.perf_counter()
        report = tokenise_file(
            deployment,
            access=access,
            source=path,
            output=output,
            domain="casino",
            columns=[ColumnSpec(c, c) for c in IDENTIFIER_COLUMNS],
            keep=["date", "amount", "store"],
            register=register,
        )
        return report.rows_in / (time.perf_counter() - started)
    finally:
        deployment.close()


@contextlib.contextmanager
def without_subject_index() -> Iterator[None]:
    """The file path with the subject index's work taken out: no references made in the
    workers, no rows written. The "before" of the index's cost, measured in the same run as the
    "after" (the workers are forked, so they inherit the change)."""
    from array import array  # noqa: PLC0415

    from tiers import _subject_index as subject_index  # noqa: PLC0415 - after the peers' runs

    saved = (subject_index.block_of, subject_index.index_blocks)
    empty = subject_index.Block(b"", array("I", [0] * ((1 << subject_index.BUCKET_BITS) + 1)))
    subject_index.block_of = lambda _secret, _bases: empty
    subject_index.index_blocks = lambda _connection, _entry, _blocks: None
    try:
        yield
    finally:
        subject_index.block_of, subject_index.index_blocks = saved


def _domains(deployment: Any, access: Any) -> list[Any]:
    from tiers.admin import list_domains  # noqa: PLC0415

    return list(list_domains(deployment, access=access))


def as_parquet(source: Path, target: Path) -> Path:
    """The CSV file ``source`` as a Parquet file of text columns (the same cells), written by
    row groups of 65,536 rows."""
    import pyarrow as pa  # noqa: PLC0415 - only this comparison needs it
    import pyarrow.csv as pa_csv  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    with open(source, "rb") as handle:
        names = handle.readline().decode().strip().split(",")
    options = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    reader = pa_csv.open_csv(source, convert_options=options)
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch, row_group_size=65_536)
    return target


def tiers_command(
    path: Path,
    output: Path,
    env: dict[str, str],
    *,
    register: bool = False,
    rows: int | None = None,
) -> tuple[float, int]:
    """Rows per second and peak memory (proportional set size in MiB, the process and its
    workers) of the ``tiers tokenise-file`` command, with or without registration."""
    command = [
        str(Path(sys.executable).with_name("tiers")),
        "tokenise-file", str(path), "-o", str(output), "--domain", "casino",
        "--column", "card=card", "--column", "email=email", "--column", "phone=phone",
        "--keep", "date,amount,store", "--purpose", "benchmark",
    ]  # fmt: skip
    if not register:
        command.append("--no-register")
    if rows is None:
        with open(path, "rb") as handle:
            rows = sum(1 for _ in handle) - 1
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        watched = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                tree = [watched, *watched.children(recursive=True)]
                # PSS: forked workers share pages with their parent; RSS would count them twice.
                peak = max(peak, sum(p.memory_full_info().pss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, errors = process.communicate()
    stop.set()
    sampler.join()
    elapsed = time.perf_counter() - started
    if process.returncode not in (0, 2):  # 2: some rows rejected, as the file intends
        raise RuntimeError(f"tiers tokenise-file failed: {errors.decode()[-500:]}")
    return rows / elapsed, peak // (1024 * 1024)


def cpu_count() -> int:
    return os.cpu_count() or 1


def normalisation_cost(path: Path, sample: int = 20_000) -> dict[str, float]:
    """Microseconds per value of each kind's normaliser (1 core), on the file's identifiers:
    the part of tiers' work that the ceiling leaves out."""
    from tiers.identifiers import NormalisationOptions, get_kind  # noqa: PLC0415

    rows = identifiers(path)[:sample]
    options = NormalisationOptions()
    costs = {}
    for position, name in enumerate(IDENTIFIER_COLUMNS):
        normaliser = get_kind(name).normaliser
        values = [row[position] for row in rows]
        started = time.perf_counter()
        for value in values:
            with contextlib.suppress(ValueError):
                normaliser(value, options)
        costs[name] = (time.perf_counter() - started) / len(values) * 1e6
    return costs
