"""What checkpoints outside the database and witnesses cost single API calls, in one run.

Three services over the same kind of home (SQLite, one worker), each loaded with single-value
pseudonymise calls for the same time:

- ``rare``: checkpoints signed only every 100 000 entries or hour (what the service did before
  checkpoints were signed every second; the reference of the ratios, run first and last);
- ``per_second``: the defaults (a checkpoint at most a second after an entry, every 256 entries
  of a process), each appended and fsynced to the checkpoint store;
- ``witnessed``: the defaults, and each checkpoint sent to a real ``tiers witness serve`` on
  127.0.0.1 that checks a consistency proof, fsyncs its state and cosigns.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.service_bench import _load, _serving, _tiers

__all__ = ["checkpoint_costs"]

VARIANTS = ("rare", "per_second", "witnessed")


def checkpoint_costs(seconds: float) -> dict[str, Any]:
    """Each variant once, between two runs of the reference (``rare``), whose mean the ratios
    divide by: on this machine one service's rate varies by a tenth from one run to the next,
    as much as what is measured."""
    first = _run("rare", seconds)
    runs = {variant: _run(variant, seconds) for variant in VARIANTS[1:]}
    last = _run("rare", seconds)
    rare = (first["requests_per_second"] + last["requests_per_second"]) / 2
    return {
        "rare": {**first, "requests_per_second": rare, "runs": [first, last]},
        **runs,
        "ratios": {
            f"{variant}_vs_rare": runs[variant]["requests_per_second"] / rare
            for variant in VARIANTS[1:]
        },
    }


def _run(variant: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiers-bench-checkpoints-") as directory:
        home = Path(directory)
        env = {
            **os.environ,
            "TIERS_HOME": str(home / "tiers"),
            "TIERS_ARGON2_PROFILE": "owasp",
            "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
            "TIERS_RATE_LIMIT_BURST": "1000000",
        }
        env.pop("TIERS_DATABASE_URL", None)
        if variant == "rare":
            env["TIERS_AUDIT_CHECKPOINT_SECONDS"] = "3600"
            env["TIERS_AUDIT_CHECKPOINT_EVERY"] = "100000"
        _tiers(env, "init")
        _tiers(env, "domain", "add", "casino", "--role", "partner")
        token = _tiers(
            env, "client", "add", "casino-app", "--role", "partner", "--domain", "casino"
        )
        token = token.split()[-1]
        with _witness(env, home, enabled=variant == "witnessed"):
            command = [str(Path(sys.executable).with_name("tiers")), "serve"]
            with _serving(command, env) as port:
                single = _load(
                    port,
                    token,
                    seconds,
                    path="/v1/pseudonymise",
                    body={"kind": "card", "values": ["10000001"]},
                )
        single["checkpoints"] = _count_checkpoints(home / "tiers")
        return single


@contextlib.contextmanager
def _witness(env: dict[str, str], home: Path, *, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    witness_home = home / "witness"
    key = _tiers(env, "witness", "init", "--home", str(witness_home), "--name", "bench/witness")
    log_key = _tiers(env, "audit", "log-key")
    binary = str(Path(sys.executable).with_name("tiers"))
    command = [binary, "witness", "serve", "--home", str(witness_home), "--log-key", log_key]
    with _serving(command, env, ready="/", base=19_000) as port:
        env["TIERS_WITNESSES"] = f"http://127.0.0.1:{port} {key}"
        yield


def _count_checkpoints(home: Path) -> dict[str, int]:
    store = home / "checkpoints" / "checkpoints.log"
    lines = store.read_text().splitlines()
    return {
        "signed": sum('"kind": "checkpoint"' in line for line in lines),
        "cosigned": sum('"kind": "cosigned"' in line for line in lines),
    }
