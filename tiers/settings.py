"""Settings: one pydantic-settings class read from ``TIERS_*`` environment variables."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from errors import ConfigurationError, KeyUnavailable
from keys import KeyEncryptionKey, MasterKey, Secret
from keys.hsm import Pkcs11Config, Pkcs11MasterKey, read_pin

__all__ = ["Settings", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing at all
        return "<unparsable database URL>"


class Settings(BaseSettings):
    """Configuration of one `tiers` deployment.

    ``TIERS_HOME`` (default ``./var``) holds the embedded SQLite database and, in development,
    the generated master key. ``TIERS_DATABASE_URL`` selects another database
    (``postgresql+psycopg://user:pass@host/db`` in production). The master key comes from
    ``TIERS_MASTER_KEY_FILE`` or ``TIERS_MASTER_KEY`` (base64 of 32 bytes), not both; without
    either, ``$TIERS_HOME/master.key`` is used. ``TIERS_ENV=production`` refuses a development
    master key. With ``TIERS_MASTER_KEY_BACKEND=pkcs11`` it is a key pair in a PKCS#11 token
    instead (``TIERS_PKCS11_*``, see :mod:`keys.hsm`), its PIN from ``TIERS_PKCS11_PIN_FILE``
    or ``TIERS_PKCS11_PIN``.
    """

    model_config = SettingsConfigDict(env_prefix="TIERS_", extra="ignore")

    home: Path = Path("var")
    database_url: str | None = None
    master_key_file: Path | None = None
    master_key: SecretStr | None = None
    # The master key in a PKCS#11 token (keys/hsm.py) instead of a file.
    master_key_backend: Literal["file", "pkcs11"] = "file"
    pkcs11_module: Path | None = None
    pkcs11_token_label: str | None = Field(default=None, min_length=1, max_length=32)
    pkcs11_key_label: str = Field(default="tiers-master", min_length=1, max_length=64)
    pkcs11_pin_file: Path | None = None
    pkcs11_pin: SecretStr | None = None
    pkcs11_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    env: Literal["development", "production"] = "development"
    phone_region: str = "FR"
    audit_checkpoint_every: int = Field(default=256, ge=1)
    # A checkpoint is also signed this long after an entry that none covers (tiers serve).
    audit_checkpoint_seconds: float = Field(default=1.0, gt=0, le=3600)
    # The log's origin line, chosen once by `tiers init` (default: tiers/<random>).
    audit_origin: str | None = Field(default=None, min_length=1, max_length=128)
    # Where signed checkpoints are kept outside the database (default $TIERS_HOME/checkpoints).
    checkpoint_dir: Path | None = None
    # Witnesses that cosign each checkpoint: "URL VKEY" pairs separated by ";" or newlines.
    witnesses: str = ""
    witness_quorum: int | None = Field(default=None, ge=1)
    witness_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    audit_retention_days: int = Field(default=365, ge=1)
    # How long both versions of a rotated key resolve before `tiers key retire` may end it.
    rotation_overlap_days: int = Field(default=90, ge=0, le=3650)
    argon2_profile: Literal["owasp", "rfc9106-low-memory", "test"] = "owasp"
    rate_limit_per_second: float = Field(default=200.0, gt=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    # Key verifications (Argon2) for callers whose key is not already verified: per address,
    # and in a pool of their own, with at most this many waiting (see api/gate.py).
    # An upload that stalls this long, or that sends less than the minimum rate on average
    # past the grace period, is refused (see api/upload.py).
    upload_read_timeout_seconds: float = Field(default=30.0, gt=0)
    upload_grace_seconds: float = Field(default=10.0, ge=0)
    upload_min_bytes_per_second: int = Field(default=16 * 1024, ge=0)
    # On SQLite, uploads are held in memory (never on disk) until they end, within this many
    # bytes a process, so that no upload holds the one writer while it waits on its client.
    upload_hold_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    # How long a request for a client waits for a second admin (see tiers/approvals.py).
    client_request_hours: int = Field(default=24, ge=1, le=24 * 30)
    address_verifications_per_second: float = Field(default=5.0, gt=0)
    address_verifications_burst: int = Field(default=20, ge=1)
    verification_threads: int = Field(default=2, ge=1)
    verification_queue: int = Field(default=32, ge=1)
    max_json_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024**3, ge=1024)
    max_batch_values: int = Field(default=100_000, ge=1)
    exchanges_file: Path | None = None
    job_stale_seconds: int = Field(default=120, ge=1)
    # This node's name among the nodes of one PostgreSQL deployment (tiers.relay); default: its
    # host and temporary folder.
    node_name: str | None = Field(default=None, max_length=128)
    # What `tiers job purge` keeps of finished file jobs' outputs (see tiers/jobs.py).
    job_retention_days: int = Field(default=7, ge=0)
    # Processes that tokenise a file's blocks in parallel (see tiers/_fastpath.py).
    file_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # API file jobs of at least this many bytes run in a process of their own, on the parallel
    # path (smaller ones in the worker's thread); uploads in parts always do (tiers/job_runs.py).
    file_job_process_bytes: int = Field(default=1024 * 1024, ge=0)
    # The largest part of an upload in parts, and how long its job waits for the next one.
    upload_part_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    upload_resume_seconds: float = Field(default=900.0, gt=0)
    # File jobs one client may run at once (each job in its own process holds one).
    max_running_jobs: int = Field(default=4, ge=1)
    # Who may read GET /metrics: callers from these networks (comma-separated CIDRs), or any
    # caller presenting this bearer credential (api/vitals.py).
    metrics_allow: str = "127.0.0.1/32,::1/128"
    metrics_token: SecretStr | None = None
    # The console (api/console/): a session ends after this long idle, and at the latest
    # after console_session_hours.
    console_idle_seconds: int = Field(default=900, ge=5, le=24 * 3600)
    console_session_hours: int = Field(default=8, ge=1, le=24)
    # Server log lines: one JSON object each ("json") or plain text ("text"). A line for each
    # request answered with an error; for every request with log_requests (a line costs a
    # fraction of a short call, and the access log already has every call).
    log_format: Literal["json", "text"] = "json"
    log_requests: bool = False
    # Dictionary-attack signs raised by `tiers audit alerts` (see tiers/alerts.py).
    alert_values_per_hour: int = Field(default=1_000_000, ge=1)
    alert_refusals_per_hour: int = Field(default=100, ge=1)
    alert_association_refusals_per_hour: int = Field(default=10, ge=1)
    # Identifiers an API client may submit, per worker process (see tiers/budgets.py).
    budget_identifiers_per_second: int = Field(default=200_000, ge=1)
    budget_identifiers_per_hour: int = Field(default=20_000_000, ge=1)

    def environment(self) -> dict[str, str]:
        """The ``TIERS_*`` variables that give these settings back, for a process the service
        starts (a file job's runner): the master key goes as its file when it is one, and as
        ``TIERS_MASTER_KEY`` only when it was given that way."""
        found: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            found[f"TIERS_{name.upper()}"] = str(value)
        return found

    @property
    def rotation_overlap(self) -> timedelta:
        return timedelta(days=self.rotation_overlap_days)

    @property
    def default_master_key_path(self) -> Path:
        return self.home / "master.key"

    @property
    def checkpoint_directory(self) -> Path:
        return self.checkpoint_dir or self.home / "checkpoints"

    @property
    def database_path(self) -> Path:
        return self.home / "tiers.db"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.database_path.resolve()}"

    def master_key_configured(self) -> bool:
        return bool(
            self.master_key or self.master_key_file or self.master_key_backend == "pkcs11"
        )

    @field_validator("home", "master_key_file", "checkpoint_dir", "pkcs11_pin_file")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Paths made absolute where the settings are read, so that errors and reports name
        the folder meant, wherever the command is run from."""
        return None if path is None else path.expanduser().absolute()

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.env == "production" and self.argon2_profile == "test":
            raise ValueError("TIERS_ARGON2_PROFILE=test is for the test suite, not production")
        return self

    def pkcs11_config(self, key_label: str | None = None) -> Pkcs11Config:
        """Where the master key pair is in the token (``key_label`` instead of the configured
        one, for a rotation). Raises :class:`ConfigurationError` for a missing setting."""
        missing = [
            name
            for name, value in (
                ("TIERS_PKCS11_MODULE", self.pkcs11_module),
                ("TIERS_PKCS11_TOKEN_LABEL", self.pkcs11_token_label),
            )
            if value is None
        ]
        if self.pkcs11_pin is None and self.pkcs11_pin_file is None:
            missing.append("TIERS_PKCS11_PIN_FILE (or TIERS_PKCS11_PIN)")
        if missing:
            raise ConfigurationError(
                f"the PKCS#11 master key needs {', '.join(missing)}", code="hsm_not_configured"
            )
        if self.pkcs11_pin is not None and self.pkcs11_pin_file is not None:
            raise ConfigurationError("set TIERS_PKCS11_PIN or TIERS_PKCS11_PIN_FILE, not both")
        assert self.pkcs11_module is not None and self.pkcs11_token_label is not None
        pin = (
            Secret(self.pkcs11_pin.get_secret_value().encode("utf-8"), label="PIN")
            if self.pkcs11_pin is not None
            else read_pin(self.pkcs11_pin_file)  # type: ignore[arg-type]
        )
        return Pkcs11Config(
            module=self.pkcs11_module,
            token_label=self.pkcs11_token_label,
            key_label=key_label or self.pkcs11_key_label,
            pin=pin,
            timeout_seconds=self.pkcs11_timeout_seconds,
        )

    def load_master_key(self, *, create: bool = False) -> KeyEncryptionKey:
        """The configured master key (with ``create``, a key pair absent from the token is
        generated there: `tiers init`).

        Raises :class:`ConfigurationError` when both sources are set or a development key is
        used in production, :class:`~errors.KeyUnavailable` when it cannot be read.
        """
        if self.master_key_backend == "pkcs11":
            if self.master_key is not None or self.master_key_file is not None:
                raise ConfigurationError(
                    "TIERS_MASTER_KEY_BACKEND=pkcs11 takes the key from the token: unset "
                    "TIERS_MASTER_KEY and TIERS_MASTER_KEY_FILE",
                    code="hsm_not_configured",
                )
            return Pkcs11MasterKey.open(self.pkcs11_config(), create=create)
        if self.master_key is not None and self.master_key_file is not None:
            raise ConfigurationError("set TIERS_MASTER_KEY or TIERS_MASTER_KEY_FILE, not both")
        if self.master_key is not None:
            key = MasterKey.from_base64(self.master_key.get_secret_value())
        elif self.master_key_file is None and not self.default_master_key_path.exists():
            raise KeyUnavailable(
                f"no master key in the home {self.home}: set TIERS_HOME to the deployment's "
                "home, or TIERS_MASTER_KEY_FILE (or TIERS_MASTER_KEY); `tiers init` would "
                "create a new deployment there, with a new development key",
                code="no_master_key",
            )
        else:
            key = MasterKey.from_file(self.master_key_file or self.default_master_key_path)
        if key.development and self.env == "production":
            raise ConfigurationError(
                "refusing a development master key with TIERS_ENV=production",
                code="development_key_in_production",
            )
        return key
