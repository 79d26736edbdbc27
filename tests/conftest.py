"""Shared fixtures: a fresh home per test, on SQLite and on the real PostgreSQL of CI."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from audit import AuditEntry, parse_entry
from tests import softhsm
from tiers.admin import initialise
from tiers.auditing import Access
from tiers.cli import app
from tiers.deployment import Deployment
from tiers.filestore import store_for
from tiers.settings import Settings
from tiers.storage import integrity

hypothesis_settings.register_profile(
    "tiers",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.load_profile("tiers")

T = TypeVar("T")
POSTGRES_URL = os.environ.get("TIERS_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("TIERS_REQUIRE_POSTGRES") == "1"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACCESS = Access(actor="operator:test", role="operator", purpose="test", now=NOW, request_id="t-1")


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_POSTGRES and not POSTGRES_URL:
        raise pytest.UsageError("TIERS_REQUIRE_POSTGRES=1 but TIERS_TEST_POSTGRES_URL is not set")
    global HSM  # noqa: PLW0603 - one token for the whole run, made before any test loads PKCS#11
    if softhsm.module() is None:
        if softhsm.REQUIRE_HSM:
            raise pytest.UsageError("TIERS_REQUIRE_HSM=1 but SoftHSM2 is not installed")
        return
    HSM = softhsm.SoftHsm.create(Path(tempfile.mkdtemp(prefix="tiers-softhsm-")))
    os.environ["SOFTHSM2_CONF"] = str(HSM.conf)


def pytest_unconfigure(config: pytest.Config) -> None:
    if HSM is not None:
        shutil.rmtree(HSM.folder, ignore_errors=True)


# The suite's SoftHSM2 token (tests/softhsm.py), or None where SoftHSM2 is not installed.
HSM: softhsm.SoftHsm | None = None


def hsm() -> softhsm.SoftHsm:
    """The suite's token; skips the test (fails it in CI) where SoftHSM2 is not installed."""
    if HSM is None:
        if softhsm.REQUIRE_HSM:
            pytest.fail("TIERS_REQUIRE_HSM=1 but SoftHSM2 is not installed")
        pytest.skip("SoftHSM2 is not installed (Debian's softhsm2)")
    return HSM


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIERS_* setting of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TIERS_") and name not in (
            "TIERS_TEST_POSTGRES_URL",
            "TIERS_REQUIRE_POSTGRES",
            "TIERS_REQUIRE_BROWSER",
            "TIERS_REQUIRE_HSM",
            "TIERS_REQUIRE_NGINX",
            "TIERS_TEST_HSM",
            "TIERS_SCREENSHOT_DIR",
        ):
            monkeypatch.delenv(name)


@dataclass
class Database:
    """One empty database for one test: SQLite in the home, or a fresh PostgreSQL schema."""

    backend: str
    home: Path
    url: str | None = None
    schema: str | None = None
    # The label of the master key pair in the suite's token, when this test keeps it there
    # (TIERS_TEST_HSM, tests/softhsm.py); None: a file in the home, as by default.
    hsm_key: str | None = None

    def env(self) -> dict[str, str]:
        env = {"TIERS_HOME": str(self.home)}
        if self.url:
            env["TIERS_DATABASE_URL"] = self.url
        if self.hsm_key is not None:
            env.update(hsm().env(self.hsm_key))
        return env

    def master_key_settings(self) -> dict[str, object]:
        """The settings that reach this test's master key from another home (a restore)."""
        if self.hsm_key is None:
            return {"master_key_file": self.home / "master.key"}
        return hsm().settings(self.hsm_key)

    def settings(self, **overrides: object) -> Settings:
        hsm_settings = {} if self.hsm_key is None else hsm().settings(self.hsm_key)
        return Settings(  # type: ignore[arg-type]
            home=self.home, database_url=self.url, **{**hsm_settings, **overrides}
        )

    def stored(self, prefix: str) -> list[str]:
        """The names of the stored files (tiers.filestore) under ``prefix``: files of the home
        on SQLite, rows of the database on PostgreSQL."""
        engine = create_engine(self.url or f"sqlite:///{self.home / 'tiers.db'}")
        try:
            return store_for(self.home, engine, embedded=self.url is None).names(prefix)
        finally:
            engine.dispose()

    def rows(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table but the access log's, sorted: a logical snapshot to show
        that nothing changed (a refused operation still adds its access-log entry)."""
        engine = create_engine(self.url or f"sqlite:///{self.home / 'tiers.db'}")
        try:
            with engine.connect() as connection:
                return {
                    table: sorted(
                        (
                            tuple(row)
                            for row in connection.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608
                        ),
                        key=repr,
                    )
                    for table in inspect(connection).get_table_names()
                    if not table.startswith("audit_")
                }
        finally:
            engine.dispose()

    def audit_entries(self) -> list[AuditEntry]:
        """The access log, parsed, in sequence order."""
        engine = create_engine(self.url or f"sqlite:///{self.home / 'tiers.db'}")
        try:
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT entry FROM audit_entries ORDER BY seq"))
                return [parse_entry(row[0].encode("ascii")) for row in rows]
        finally:
            engine.dispose()

    def integrity_faults(self) -> dict[str, int]:
        """What the schema no longer makes the database check since migration 0010, counted by
        the product's own check (tiers.storage.integrity, which `tiers check` runs). There must
        be none."""
        if self.backend == "sqlite" and not (self.home / "tiers.db").exists():
            return {}
        engine = create_engine(self.url or f"sqlite:///{self.home / 'tiers.db'}")
        try:
            with engine.connect() as connection:
                if not {"cards", "pseudonym_index", "withdrawn"} <= set(
                    inspect(connection).get_table_names()
                ):
                    return {}
                return integrity.faults(connection)
        finally:
            engine.dispose()

    def stored_bytes(self) -> bytes:
        """Everything the database holds, as bytes, to search for values that must not be there."""
        if self.backend == "sqlite":
            return b"".join(
                path.read_bytes() for path in sorted(self.home.glob("tiers.db*")) if path.is_file()
            )
        assert self.url is not None
        engine = create_engine(self.url)
        chunks: list[bytes] = []
        try:
            with engine.connect() as connection:
                for table in inspect(connection).get_table_names():
                    query = text(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the catalogue
                    for row in connection.execute(query):
                        for value in row:
                            chunks.append(
                                value if isinstance(value, bytes) else str(value).encode()
                            )
        finally:
            engine.dispose()
        return b"\n".join(chunks)


def _no_integrity_fault(database: Database) -> None:
    """Checked after every test that has a database: whatever it wrote, every index entry and
    card names a subject and a domain that exist, no partner has a card twice, and every card
    not withdrawn has a key in the hub's active version, if there is a hub."""
    assert {} == {fault: n for fault, n in database.integrity_faults().items() if n}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    in_file = request.node.get_closest_marker("master_key_file") is not None
    with _master_key_of(None if in_file else request.param) as hsm_key:
        yield from _database(request.param, tmp_path / "var", hsm_key)


@contextmanager
def _master_key_of(backend: str | None) -> Iterator[str | None]:
    """The label of the test's key pair in the suite's token, removed after the test; None
    when this backend's tests keep the master key in a file (TIERS_TEST_HSM), or the test is
    about the file (``backend`` None)."""
    if backend is None or not softhsm.hsm_on(backend):
        yield None
        return
    token, label = hsm(), softhsm.new_label()
    try:
        yield label
    finally:
        token.destroy(label)


def _database(backend: str, home: Path, hsm_key: str | None) -> Iterator[Database]:
    if backend == "sqlite":
        database = Database("sqlite", home, hsm_key=hsm_key)
        yield database
        _no_integrity_fault(database)
        return
    if not POSTGRES_URL:
        pytest.skip("set TIERS_TEST_POSTGRES_URL to run the PostgreSQL tests")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin_engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        database = Database(
            "postgresql", home, url.render_as_string(hide_password=False), schema, hsm_key
        )
        yield database
        _no_integrity_fault(database)
    finally:
        with admin_engine.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin_engine.dispose()


@pytest.fixture
def settings(database: Database) -> Settings:
    return database.settings()


@pytest.fixture
def deployment(settings: Settings) -> Iterator[Deployment]:
    initialise(settings, access=ACCESS)
    opened = Deployment.open(settings)
    yield opened
    opened.close()


@dataclass
class Cli:
    """Runs the real ``tiers`` command line in process, against the test's database, as an
    operator who exported a purpose (``TIERS_PURPOSE``) for the session."""

    database: Database
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | bytes | None = None, **env: str) -> Result:
        return self.runner.invoke(
            app,
            list(args),
            input=input,
            env={"TIERS_PURPOSE": "test suite", **self.database.env(), **env},
            catch_exceptions=False,
        )

    def ok(self, *args: str, input: str | bytes | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.stderr + result.stdout
        return result


@pytest.fixture
def cli(database: Database) -> Cli:
    return Cli(database)


@pytest.fixture
def initialised_cli(cli: Cli) -> Cli:
    cli.ok("init")
    cli.ok("domain", "add", "casino", "--role", "partner")
    cli.ok("domain", "add", "sncf", "--role", "partner")
    cli.ok("domain", "add", "hub", "--role", "hub")
    return cli


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` in a thread of its own. Once the browser tests have run in a
    process (a worker of `make test` that took their file), Playwright keeps an event loop
    running in the main thread until the session ends, where ``asyncio.run`` refuses to
    start another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def assert_absent(haystack: bytes, needles: Sequence[str], where: str) -> None:
    """None of ``needles`` (clear identifiers) appears in ``haystack``, in any usual encoding."""
    for needle in needles:
        for form in {needle, needle.lower(), needle.upper()}:
            for encoded in (form.encode("utf-8"), form.encode("utf-16-le")):
                assert encoded not in haystack, f"a clear identifier was found in {where}"


@contextmanager
def statements(deployment: Deployment, containing: str) -> Iterator[list[str]]:
    """The statements sent to the database that contain ``containing``, while in the block."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if containing in statement:
            seen.append(statement)

    event.listen(deployment.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(deployment.engine, "before_cursor_execute", record)


# The alliance of the seed: four partners and the hub.
PARTNERS = ("casino", "galeries-lafayette", "caisse-epargne", "sncf")


@pytest.fixture
def alliance(deployment: Deployment) -> Deployment:
    """A deployment with the four partners' domains and the hub's (no cards yet)."""
    from tiers.admin import add_domain  # noqa: PLC0415 - only the tests that use it

    for name in PARTNERS:
        add_domain(deployment, access=ACCESS, name=name, role="partner")
    add_domain(deployment, access=ACCESS, name="hub", role="hub")
    return deployment
