"""`make bench`: file tokenisation against the ceiling and peers, exchanges to the hub, the
API under load, and look-ups as the alliance grows. Prints a table of figures and ratios
measured in this run and writes them, with a description of the machine, to
``bench/results.json``.

    python -m bench.run [--quick] [--rows N] [--database-url postgresql+psycopg://…]
                        [--scale 10000,100000,1000000] [--exchange-rows N]
                        [--skip files,peers,exchanges,api,blind,scale]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    abuse_bench,
    blind_bench,
    checkpoints_bench,
    exchanges_bench,
    files_bench,
    hsm_bench,
    nodes_bench,
    service_bench,
    spark_bench,
    vitals_bench,
)
from bench.data import write_customer_file
from bench.pg import fresh_schema

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - the repository's own git
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    changed = subprocess.run(
        # The figures' own files do not count: a run must not make the next one "uncommitted".
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results*"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if changed:  # figures of code that is not in any commit say so
        commit += "+uncommitted"
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def line(label: str, value: float, unit: str, note: str = "") -> None:
    shown = f"{value:>14,.3f}" if unit == "×" else f"{value:>14,.1f}"
    print(f"  {label:<64} {shown} {unit:<10} {note}")


def peer_runs(options: argparse.Namespace, path: Path, work: Path) -> dict[str, float]:
    peer_rows = min(options.rows, options.peer_rows)
    peer_path = (
        path if peer_rows == options.rows else write_customer_file(work / "peer.csv", peer_rows)
    )
    out = work / "peer.out.csv"
    peers = {
        "csv + hmac": files_bench.timed(lambda: files_bench.peer_csv(peer_path, out)),
        "pandas + hmac": files_bench.timed(lambda: files_bench.peer_pandas(peer_path, out)),
        "presidio hash": files_bench.timed(lambda: files_bench.peer_presidio(peer_path, out)),
    }
    for name, value in peers.items():
        line(f"peer: {name} (1 core, {peer_rows:,} rows)", value, "rows/s")
    return peers


def file_section(options: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    rows = options.rows
    path = write_customer_file(work / "customers.csv", rows)
    cores = files_bench.cpu_count()
    print(f"File tokenisation: {rows:,} rows (card, email, phone + 3 payload columns)")
    figures: dict[str, Any] = {"rows": rows, "cores": cores}
    figures["ceiling_1_core"] = files_bench.ceiling(path, 1)
    figures["ceiling_all_cores"] = files_bench.ceiling(path, cores)
    line("ceiling, 2×HMAC per identifier, 1 core", figures["ceiling_1_core"], "rows/s")
    line(f"ceiling, all {cores} cores", figures["ceiling_all_cores"], "rows/s")
    figures["normalise_us_per_value"] = files_bench.normalisation_cost(path)
    for kind, cost in figures["normalise_us_per_value"].items():
        line(f"normalising one {kind} (not in the ceiling), 1 core", cost, "µs")
    peers = {} if "peers" in options.skip else peer_runs(options, path, work)
    figures["peers"] = peers
    out = work / "out.csv"
    tiers: dict[str, float] = {}
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if options.database_url:
        backends.append(("postgresql", options.database_url))
    index_cost: dict[str, float] = {}
    for backend, url in backends:
        for register in (False, True):
            label = f"tiers in process, {backend}, {'with' if register else 'without'} registration"
            for indexed in (False, True):
                run = label if indexed else f"{label}, subject index taken out"
                home = Path(tempfile.mkdtemp(prefix="tiers-bench-", dir=work))
                taken_out = (
                    contextlib.nullcontext() if indexed else files_bench.without_subject_index()
                )
                with fresh_schema(url) as scoped, taken_out:
                    tiers[run] = files_bench.tiers_in_process(
                        path, out, home=home, database_url=scoped, register=register
                    )
                line(run, tiers[run], "rows/s")
            before = tiers[f"{label}, subject index taken out"]
            index_cost[label] = 1 - tiers[label] / before
            line(f"cost of the subject index ({label})", 100 * index_cost[label], "%")
    figures["subject_index_cost"] = index_cost
    memory, registering = _command_runs(backends, path, rows, work, tiers)
    figures["parquet"] = _parquet_runs(path, rows, work, tiers)
    figures["api_file_jobs"] = _api_job_runs(path, work, tiers)
    if options.database_url:
        figures["calls_beside_a_file_job"] = _calls_beside(path, work, options.database_url)
    figures["tiers"] = tiers
    figures["peak_memory_mib"] = memory.pop("sqlite")
    if "postgresql" in memory:
        figures["peak_memory_postgresql_mib"] = memory["postgresql"]
    figures["peak_memory_registering_mib"] = {
        f"{backend}, {rows}": peak for backend, peak in registering.items()
    }
    best = tiers["tiers in process, sqlite, without registration"]
    ratios = {"tiers / ceiling (all cores)": best / figures["ceiling_all_cores"]}
    if peers:
        ratios["tiers / fastest peer"] = best / max(peers.values())
    figures["ratios"] = ratios
    for name, value in ratios.items():
        line(name, value, "×")
    results["file_tokenisation"] = figures


def _parquet_runs(path: Path, rows: int, work: Path, tiers: dict[str, float]) -> dict[str, float]:
    """The same file as Parquet, on SQLite without registration: in process and by the
    command (and its peak memory), against the CSV runs of this run."""
    parquet = files_bench.as_parquet(path, work / "customers.parquet")
    home = Path(tempfile.mkdtemp(prefix="tiers-bench-", dir=work))
    label = "tiers in process, sqlite, without registration, parquet"
    tiers[label] = files_bench.tiers_in_process(
        parquet, work / "out.parquet", home=home, database_url=None, register=False
    )
    line(label, tiers[label], "rows/s")
    env = _command_home(work / "cli-home-parquet", None)
    command = "tiers tokenise-file command, sqlite, without registration, parquet"
    tiers[command], peak = files_bench.tiers_command(parquet, work / "out.parquet", env, rows=rows)
    line(command, tiers[command], "rows/s")
    line(f"peak memory of the command, parquet, {rows:,} rows", peak, "MiB")
    figures = {
        "parquet / csv in process": tiers[label]
        / tiers["tiers in process, sqlite, without registration"],
        "parquet / csv command": tiers[command]
        / tiers["tiers tokenise-file command, sqlite, without registration"],
        "peak_memory_mib": peak,
    }
    for name in ("parquet / csv in process", "parquet / csv command"):
        line(name, figures[name], "×")
    parquet.unlink()
    return figures


def _api_job_runs(path: Path, work: Path, tiers: dict[str, float]) -> dict[str, float]:
    """The same file as a partner's API file job on SQLite without registration (upload, wait,
    download with tiers-client): in the worker's thread (as before jobs had their own
    process), in a process of its own, and in parts of 16 MiB; against the command."""
    env = _command_home(work / "api-home", None)
    command = tiers["tiers tokenise-file command, sqlite, without registration"]
    figures: dict[str, float] = {}
    for label, options in (
        ("in the worker's thread", {"part_bytes": None, "in_thread": True}),
        ("in its own process", {"part_bytes": None}),
        ("in its own process, in parts of 16 MiB", {"part_bytes": 16 << 20}),
    ):
        run = f"tiers API file job, sqlite, without registration, {label}"
        tiers[run] = service_bench.file_job(path, env, **options)  # type: ignore[arg-type]
        figures[f"API file job {label} / command"] = tiers[run] / command
        line(run, tiers[run], "rows/s")
        line(f"API file job {label} / command", figures[f"API file job {label} / command"], "×")
    return figures


def _calls_beside(path: Path, work: Path, database_url: str) -> dict[str, Any]:
    """Single calls on PostgreSQL while a file job runs in the worker's thread, or in its own
    process, against the same calls alone: what a job in its own process spares the others."""
    with fresh_schema(database_url) as scoped:
        env = _command_home(work / "calls-home", scoped)
        found = service_bench.calls_beside_a_file_job(path, env)
    alone = found["alone"]["requests_per_second"]
    for label, run in found.items():
        line(f"single calls, {label}, postgresql", run["requests_per_second"], "requests/s")
        if label != "alone":
            run["ratio_to_alone"] = run["requests_per_second"] / alone
            line(f"single calls {label} / alone", run["ratio_to_alone"], "×")
    return found


def _command_runs(
    backends: list[tuple[str, str | None]],
    path: Path,
    rows: int,
    work: Path,
    tiers: dict[str, float],
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """The ``tiers tokenise-file`` command on each backend, without and with registration,
    its rates added to ``tiers``; returns its peak memory (MiB) without registration, by
    backend and rows (on SQLite also at four times the file's size), and registering, by
    backend."""
    out = work / "out.csv"
    memory: dict[str, dict[str, int]] = {}
    registering: dict[str, int] = {}
    for backend, url in backends:
        with fresh_schema(url) as scoped:
            env = _command_home(work / f"cli-home-{backend}", scoped)
            label = f"tiers tokenise-file command, {backend}, without registration"
            tiers[label], peak = files_bench.tiers_command(path, out, env)
            memory[backend] = {str(rows): peak}
            line(label, tiers[label], "rows/s")
            line(f"peak memory of the command, {backend}, {rows:,} rows", peak, "MiB")
            if backend == "sqlite":  # the file's size, not the database, is what could matter
                big = rows * 4
                big_path = write_customer_file(work / "customers-4x.csv", big)
                _, peak = files_bench.tiers_command(big_path, out, env)
                big_path.unlink()
                memory[backend][str(big)] = peak
                line(f"peak memory of the command, {backend}, {big:,} rows", peak, "MiB")
            label = f"tiers tokenise-file command, {backend}, with registration"
            tiers[label], registering[backend] = files_bench.tiers_command(
                path, out, env, register=True
            )
            line(label, tiers[label], "rows/s")
            line(f"peak memory of the command, {backend}, registering", registering[backend], "MiB")
    return memory, registering


def _command_home(home: Path, database_url: str | None) -> dict[str, str]:
    """The environment of a ``tiers`` command using a new home (and database, if given) with
    the benchmark's partner domain."""
    env = {**os.environ, "TIERS_HOME": str(home), "TIERS_ARGON2_PROFILE": "test"}
    if database_url:
        env["TIERS_DATABASE_URL"] = database_url
    tiers = str(Path(sys.executable).with_name("tiers"))
    for arguments in (["init"], ["domain", "add", "casino", "--role", "partner"]):
        subprocess.run([tiers, *arguments], env=env, check=True, capture_output=True)  # noqa: S603
    return env


def api_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    seconds = 5.0 if options.quick else 20.0
    runs = {"sqlite": service_bench.api(None, seconds, 1)}
    if options.database_url:
        with fresh_schema(options.database_url) as scoped:
            runs["postgresql"] = service_bench.api(scoped, seconds, files_bench.cpu_count())
    # The reference at each worker count a backend ran with: no database, no access log.
    references = {
        str(workers): service_bench.reference(seconds, workers)
        for workers in sorted({run["workers"] for run in runs.values()})
    }
    print(f"API (uvicorn on 127.0.0.1, load from a separate process, {seconds:.0f} s per test)")
    print("  (the reference: the same framework and HMACs, no database, no access log)")
    for workers, reference in references.items():
        _calls_lines(f"reference, {workers} worker(s)", reference)
    for backend, run in runs.items():
        _calls_lines(f"{backend}, {run['workers']} worker(s)", run)
        fresh, links = run["batch_10000_fresh"], run["link_resolve"]
        line(f"{backend}: 10 000 new values a batch", fresh["identifiers_per_second"], "ids/s")
        note = f"p99 {links['p99_ms']} ms"
        line(f"{backend}: hub link resolution", links["requests_per_second"], "req/s", note)
        reference = references[str(run["workers"])]
        run["ratios"] = {
            "single_vs_reference": run["single"]["requests_per_second"]
            / reference["single"]["requests_per_second"],
            "batch_vs_reference": run["batch_10000"]["identifiers_per_second"]
            / reference["batch_10000"]["identifiers_per_second"],
        }
        for name, value in run["ratios"].items():
            line(f"{backend}: {name.replace('_', ' ')}", value, "×")
        errors = sum(run[test]["errors"] for test in ("single", "batch_10000"))
        errors += fresh["errors"] + links["errors"]
        if errors:
            print(f"  ! {errors} requests failed on {backend}")
    for workers, reference in references.items():
        errors = reference["single"]["errors"] + reference["batch_10000"]["errors"]
        if errors:
            print(f"  ! {errors} requests failed on the reference with {workers} worker(s)")
    results["api"] = {**runs, "reference": references}


def checkpoints_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    seconds = 5.0 if options.quick else 20.0
    print(f"Checkpoints outside the database and a witness (SQLite, single calls, {seconds:.0f} s)")
    figures = checkpoints_bench.checkpoint_costs(seconds)
    for variant in checkpoints_bench.VARIANTS:
        run = figures[variant]
        note = (
            f"p50 {run['p50_ms']} / p99 {run['p99_ms']} ms; "
            f"{run['checkpoints']['signed']} checkpoints, {run['checkpoints']['cosigned']} cosigned"
        )
        line(f"{variant}: single-value pseudonymise", run["requests_per_second"], "req/s", note)
        if run["errors"]:
            print(f"  ! {run['errors']} requests failed ({variant})")
    for name, value in figures["ratios"].items():
        line(name.replace("_", " "), value, "×")
    results["checkpoints"] = figures


def abuse_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    seconds = 5.0 if options.quick else 15.0
    print(
        f"Abuse (SQLite, one legitimate client, {abuse_bench.FLOODERS} flooders of bad keys, "
        f"{abuse_bench.SLOW_UPLOADERS} slow uploaders, {seconds:.0f} s each)"
    )
    figures = abuse_bench.abuse_costs(seconds)
    for name in ("idle", "flood", "slow_uploads"):
        run = figures[name]
        note = f"p50 {run['p50_ms']} / p99 {run['p99_ms']} ms; {run['errors']} errors"
        line(f"{name}: single-value pseudonymise", run["requests_per_second"], "req/s", note)
    for name, value in figures["ratios"].items():
        line(name.replace("_", " "), value, "×", "target: at most 3")
    results["abuse"] = figures


def vitals_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    seconds = 5.0 if options.quick else 15.0
    print(
        f"Console and metrics (SQLite, one client's single calls, {seconds:.0f} s each; "
        "/metrics read 4 times a second and a console page twice a second beside them)"
    )
    figures = vitals_bench.vitals_costs(seconds)
    for name in ("idle", "observed"):
        run = figures[name]
        note = f"p50 {run['p50_ms']} / p99 {run['p99_ms']} ms; {run['errors']} errors"
        line(f"{name}: single-value pseudonymise", run["requests_per_second"], "req/s", note)
    for name, value in figures["ratios"].items():
        line(name.replace("_", " "), value, "×")
    results["vitals"] = figures


def hsm_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    if not hsm_bench.available():
        print("HSM: skipped (SoftHSM2 is not installed: apt-get install softhsm2)")
        return
    seconds = 5.0 if options.quick else 15.0
    print(
        f"Master key in a PKCS#11 token (SoftHSM2) against a key file ({seconds:.0f} s each; "
        "SQLite, one client's single calls)"
    )
    figures = hsm_bench.hsm_costs(seconds)
    line("file key: unwraps", figures["unwraps"]["file_per_second"], "/s")
    line("token key: unwraps", figures["unwraps"]["hsm_per_second"], "/s")
    for name in ("file", "hsm"):
        run = figures["single"][name]
        note = f"p50 {run['p50_ms']} / p99 {run['p99_ms']} ms; {run['errors']} errors"
        line(f"{name}: single-value pseudonymise", run["requests_per_second"], "req/s", note)
    for name, value in figures["ratios"].items():
        line(name.replace("_", " "), value, "×")
    results["hsm"] = figures


def blind_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    if not blind_bench.available():
        print("Blind mode: skipped (libsodium is not installed: apt-get install libsodium23)")
        return
    figures = blind_bench.costs()
    print(f"Blind mode's oblivious function on one core ({blind_bench.BATCH:,}-element batches)")
    for name, value in figures.items():
        unit = "×" if "_vs_" in name else "/s"
        line(name.replace("_", " "), value, unit)
    compared = blind_bench.schemes_compared()
    print("The service's tokeniser under each scheme (clear e-mails, one core)")
    line("hmac scheme", compared["hmac_identifiers"], "/s")
    line("oprf scheme", compared["oprf_identifiers"], "/s")
    line("oprf against hmac", compared["oprf_vs_hmac"], "×")
    figures["schemes"] = compared
    served = blind_bench.endpoint(5.0 if options.quick else 30.0)
    print(f"Blind mode's endpoint under load (tiers serve, one worker, {served['batch']:,} a call)")
    line("elements evaluated, with the proof", served["endpoint_elements_per_second"], "/s")
    line("the HMAC mode's new identifiers", served["hmac_identifiers_per_second"], "/s")
    line("the endpoint against the HMAC mode", served["endpoint_vs_hmac"], "×")
    figures["endpoint"] = served
    rows = 20_000 if options.quick else 1_000_000
    print(f"A file of {rows:,} rows end to end (its card column, tiers serve, one worker)")
    both = blind_bench.file_end_to_end(rows)
    line("the service from the clear cards (HMAC mode)", both["hmac_rows_per_second"], "rows/s")
    line("the partner's client in blind mode", both["blind_rows_per_second"], "rows/s")
    line("blind mode against the HMAC mode", both["blind_vs_hmac"], "×")
    figures["file"] = both
    results["blind"] = figures


def _calls_lines(label: str, run: dict[str, Any]) -> None:
    single = run["single"]
    note = f"p50 {single['p50_ms']} / p95 {single['p95_ms']} / p99 {single['p99_ms']} ms"
    line(f"{label}: single-value pseudonymise", single["requests_per_second"], "req/s", note)
    line(f"{label}: 10 000-value batches", run["batch_10000"]["identifiers_per_second"], "ids/s")


def exchange_section(options: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    rows = options.exchange_rows
    path = exchanges_bench.write_purchases_file(work / "purchases.csv", rows)
    print(f"Exchanges (in process): {rows:,} purchases to the hub, each on its own card")
    backends = [("sqlite", None)]
    if options.database_url:
        backends.append(("postgresql", options.database_url))
    figures: dict[str, Any] = {"rows": rows}
    for backend, url in backends:
        home = Path(tempfile.mkdtemp(prefix="tiers-bench-", dir=work))
        with fresh_schema(url) as scoped:
            figures[backend] = exchanges_bench.exchange_rates(path, home=home, database_url=scoped)
        for run, rate in figures[backend].items():
            line(f"{backend}: exchange send, {run}", rate, "rows/s")
    path.unlink()
    results["exchanges"] = figures


def scale_section(options: argparse.Namespace, results: dict[str, Any]) -> None:
    _customers_scale(options, results)
    _spark_scale(options, results)
    if not options.database_url:
        print("Scale over nodes: skipped (needs --database-url, PostgreSQL)")
        return
    seconds = 5.0 if options.quick else 15.0
    with fresh_schema(options.database_url) as scoped:
        assert scoped is not None
        appends = nodes_bench.sequencer(scoped, seconds / 3)
    print("The access log's sequencer (entries appended per second, a transaction each)")
    for threads, rate in appends.items():
        line(f"{threads} thread(s)", rate, "entries/s")
    results["scale_sequencer"] = appends
    if not nodes_bench.available():
        print("Scale over nodes: skipped (nginx is not installed)")
        return
    with fresh_schema(options.database_url) as scoped:
        assert scoped is not None
        runs = nodes_bench.nodes(scoped, seconds)
    print(f"Nodes behind nginx, round robin, on this machine ({seconds:.0f} s per test)")
    one = runs["1"]
    for count, run in runs.items():
        single, batch = run["single"], run["batch_10000"]
        run["ratios"] = {
            "single_vs_one_node": single["requests_per_second"]
            / one["single"]["requests_per_second"],
            "batch_vs_one_node": batch["identifiers_per_second"]
            / one["batch_10000"]["identifiers_per_second"],
        }
        note = f"p99 {single['p99_ms']} ms, {single['errors']} errors"
        line(f"{count} node(s): single calls", single["requests_per_second"], "req/s", note)
        line(f"{count} node(s): 10 000-value batches", batch["identifiers_per_second"], "ids/s")
        for name, value in run["ratios"].items():
            line(f"{count} node(s): {name.replace('_', ' ')}", value, "×")
    results["scale_nodes"] = runs


def _spark_scale(options: argparse.Namespace, results: dict[str, Any]) -> None:
    if not spark_bench.available():
        print("Spark against the fork pool: skipped (needs pyspark and Java 17)")
        return
    rows = 20_000 if options.quick else 200_000
    with tempfile.TemporaryDirectory(prefix="tiers-bench-spark-") as directory:
        run = spark_bench.versus_fork_pool(Path(directory), rows)
    print(f"Spark {spark_bench.MASTER} against the fork pool (2 workers), {rows:,} rows")
    line("fork pool", run["fork_pool_rows_per_second"], "rows/s")
    line(f"Spark {spark_bench.MASTER}", run["spark_rows_per_second"], "rows/s")
    line("Spark's first run (JVM start)", run["spark_first_run_seconds"], "s")
    line("Spark against the fork pool", run["spark_vs_fork_pool"], "×")
    line("fork pool, registering", run["fork_pool_registering_rows_per_second"], "rows/s")
    registering = run["spark_registering_rows_per_second"]
    line(f"Spark {spark_bench.MASTER}, registering", registering, "rows/s")
    line("Spark against the fork pool, registering", run["spark_vs_fork_pool_registering"], "×")
    results["scale_spark"] = run


def _customers_scale(options: argparse.Namespace, results: dict[str, Any]) -> None:
    print("Scale (in process, SQLite)")
    rows = []
    for customers in options.scale:
        row = service_bench.scale(customers, None)
        rows.append(row)
        line(f"{customers:,} customers: one link resolution", row["resolve_ms"], "ms")
        routing = row["campaign_ms_per_key"] * 1000
        line(f"{customers:,} customers: campaign routing per key", routing, "µs")
    results["scale"] = rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--rows", type=int, default=None, help="file rows (default 1 000 000)")
    parser.add_argument("--peer-rows", type=int, default=None, help="rows the peers process")
    parser.add_argument("--database-url", default=os.environ.get("TIERS_BENCH_POSTGRES_URL"))
    parser.add_argument("--scale", default=None, help="customer counts, comma-separated")
    parser.add_argument("--exchange-rows", type=int, default=None, help="rows (default 200 000)")
    parser.add_argument(
        "--skip",
        default="",
        help="sections to skip: files,peers,exchanges,api,checkpoints,abuse,vitals,hsm,blind,"
        "scale",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    options = parser.parse_args()
    options.rows = options.rows or (100_000 if options.quick else 1_000_000)
    options.exchange_rows = options.exchange_rows or (20_000 if options.quick else 200_000)
    options.peer_rows = options.peer_rows or (20_000 if options.quick else 200_000)
    sizes = options.scale or ("1000,10000" if options.quick else "10000,100000,1000000")
    options.scale = [int(n) for n in sizes.split(",")]
    options.skip = set(filter(None, options.skip.split(",")))
    results: dict[str, Any] = {"machine": machine(), "quick": options.quick}
    print(f"tiers benchmarks on {results['machine']['cpu']} ({results['machine']['cores']} cores)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tiers-bench-") as directory:
        if "files" not in options.skip:
            file_section(options, Path(directory), results)
        if "exchanges" not in options.skip:
            exchange_section(options, Path(directory), results)
        if "api" not in options.skip:
            api_section(options, results)
        if "checkpoints" not in options.skip:
            checkpoints_section(options, results)
        if "abuse" not in options.skip:
            abuse_section(options, results)
        if "vitals" not in options.skip:
            vitals_section(options, results)
        if "hsm" not in options.skip:
            hsm_section(options, results)
        if "blind" not in options.skip:
            blind_section(options, results)
        if "scale" not in options.skip:
            scale_section(options, results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    options.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {options.output} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
