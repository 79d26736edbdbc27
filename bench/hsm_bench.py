"""What keeping the master key in a PKCS#11 token costs, against a key file, in one run.

- ``unwraps``: unwrapping one wrapped domain key, again and again, in this process, under a
  key held in memory and under a key pair in a SoftHSM2 token (a fresh token in a temporary
  folder). Unwraps happen when a process first needs a keyring, and after a rotation.
- ``single``: one partner's single-value pseudonymise calls on one connection to a real
  ``tiers serve`` (SQLite, one worker), with the key in a file, then in the token, measured
  in alternation, the best of each kept. Keyrings are unwrapped once and kept, and a row's
  seal is remembered once it held: steady-state calls should not touch the token at all.

SoftHSM2 is a software token: a hardware HSM answers each operation more slowly (a network
HSM in a millisecond or so), which matters for the unwraps, not for the steady state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.abuse_bench import _measured
from bench.service_bench import _serving, partner_home
from keys import KeyIdentity, MasterKey, Secret, new_key_material, unwrap_key, wrap_key
from keys.hsm import Pkcs11Config, Pkcs11MasterKey

__all__ = ["available", "hsm_costs"]

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "bench-pin"
ROUNDS = 2


def available() -> bool:
    return MODULE.exists() and shutil.which("softhsm2-util") is not None


def hsm_costs(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiers-bench-hsm-") as directory:
        folder = Path(directory)
        conf = _token(folder)
        os.environ["SOFTHSM2_CONF"] = str(conf)  # read when this process first loads the module
        pin_file = folder / "pin"
        pin_file.write_text(PIN + "\n", encoding="utf-8")
        pin_file.chmod(0o600)
        unwraps = _unwraps(seconds / 2)
        single = _single_calls(folder, conf, pin_file, seconds)
    return {
        "unwraps": unwraps,
        "single": single,
        "ratios": {
            "unwraps_hsm_vs_file": unwraps["hsm_per_second"] / unwraps["file_per_second"],
            "single_hsm_vs_file": single["hsm"]["requests_per_second"]
            / max(single["file"]["requests_per_second"], 1e-9),
        },
    }


def _token(folder: Path) -> Path:
    tokens = folder / "tokens"
    tokens.mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            shutil.which("softhsm2-util") or "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--so-pin",
            "bench-so",
            "--pin",
            PIN,
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    return conf


def _rate(master: Any, seconds: float) -> float:
    identity = KeyIdentity(purpose="pseudonym", owner="casino", version=1)
    wrapped = wrap_key(master, new_key_material(), identity)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            unwrap_key(master, wrapped, identity)
        done += 200
    return done / (time.perf_counter() - started)


def _unwraps(seconds: float) -> dict[str, float]:
    in_memory = MasterKey(new_key_material(), source="bench")
    config = Pkcs11Config(MODULE, "bench", "bench-unwraps", Secret(PIN.encode()))
    in_token = Pkcs11MasterKey.open(config, create=True)
    return {
        "file_per_second": _rate(in_memory, seconds),
        "hsm_per_second": _rate(in_token, seconds),
    }


def _single_calls(folder: Path, conf: Path, pin_file: Path, seconds: float) -> dict[str, Any]:
    base = {
        **os.environ,
        "TIERS_RATE_LIMIT_PER_SECOND": "1000000",
        "TIERS_RATE_LIMIT_BURST": "1000000",
    }
    base.pop("TIERS_DATABASE_URL", None)
    backends = {
        "file": {**base, "TIERS_HOME": str(folder / "file")},
        "hsm": {
            **base,
            "TIERS_HOME": str(folder / "hsm"),
            "SOFTHSM2_CONF": str(conf),
            "TIERS_MASTER_KEY_BACKEND": "pkcs11",
            "TIERS_PKCS11_MODULE": str(MODULE),
            "TIERS_PKCS11_TOKEN_LABEL": "bench",
            "TIERS_PKCS11_KEY_LABEL": "bench-service",
            "TIERS_PKCS11_PIN_FILE": str(pin_file),
        },
    }
    tokens = {name: partner_home(env) for name, env in backends.items()}
    best: dict[str, dict[str, Any]] = {}
    command = [str(Path(sys.executable).with_name("tiers")), "serve"]
    for _ in range(ROUNDS):
        for name, env in backends.items():
            with _serving(command, env) as port:
                run = _measured(port, tokens[name], seconds / ROUNDS, None)
            if name not in best or run["requests_per_second"] > best[name]["requests_per_second"]:
                best[name] = run
    return best
