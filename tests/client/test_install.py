"""tiers-client installs on its own: a fresh virtual environment gets httpx and rich, never
the server's packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The server's packages, pyarrow, which only the client's `parquet` extra installs, and
# pysodium and phonenumbers, which only its `blind` extra installs.
SERVER_PACKAGES = (
    "tiers", "fastapi", "sqlalchemy", "argon2", "uvicorn", "pydantic", "typer", "pyarrow",
    "pysodium", "phonenumbers",
)  # fmt: skip


@pytest.mark.slow
def test_the_client_installs_without_the_server(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT / "client")],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = (
        "import importlib.util, tiers_client; "
        f"print([m for m in {SERVER_PACKAGES!r} if importlib.util.find_spec(m)])"
    )
    found = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert found.stdout.strip() == "[]"
    version = subprocess.run(
        [str(venv / "bin" / "tiers-client"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "tiers-client 0.1.0"
    parquet = tmp_path / "customers.parquet"
    parquet.write_bytes(b"PAR1")
    without = _offline(venv, tmp_path, "tokenise", str(parquet))
    assert without.returncode == 1 and without.stderr.strip().endswith("[needs_pyarrow]")
    # Blind mode's libraries are an extra too: said before anything is sent.
    source = tmp_path / "customers.csv"
    source.write_text("card\n10000001\n")
    unblinded = _offline(venv, tmp_path, "blind-tokenise", str(source))
    assert unblinded.returncode == 1 and unblinded.stderr.strip().endswith("[needs_blind]")
    assert not (tmp_path / "out.csv").exists()


def _offline(
    venv: Path, folder: Path, command: str, source: str
) -> subprocess.CompletedProcess[str]:
    """``tiers-client COMMAND SOURCE -o out.csv --column card=card`` with no service behind
    its address: what it says before it would send anything."""
    return subprocess.run(
        [str(venv / "bin" / "tiers-client"), command, source, "-o", "out.csv",
         "--column", "card=card"],
        capture_output=True, text=True, check=False, cwd=folder,
        env={"TIERS_URL": "http://127.0.0.1:9", "TIERS_API_KEY": "k", "TIERS_PURPOSE": "t"},
    )  # fmt: skip
