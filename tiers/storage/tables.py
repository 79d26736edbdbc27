"""The database schema (SQLAlchemy Core tables). No clear identifier has a column here."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "domains", "keys", "meta", "metadata", "pseudonym_index", "subjects"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, stored as naive UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("card_luhn", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

keys = Table(
    "keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(32), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    # AES-256-GCM wrapped material; NULL once destroyed.
    Column("wrapped", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("state_changed_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner", "purpose", "version"),
)

# One row per customer identifier ever registered: the base pseudonym B and nothing else.
subjects = Table(
    "subjects",
    metadata,
    Column("base", LargeBinary(32), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Reverse look-up: (domain, key version, pseudonym value) -> subject. The primary key gives the
# O(log n) look-up; the subject index serves re-derivation on rotation.
pseudonym_index = Table(
    "pseudonym_index",
    metadata,
    Column("domain_id", Integer, ForeignKey("domains.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("value", LargeBinary(20), primary_key=True),
    Column("subject", LargeBinary(32), ForeignKey("subjects.base"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "subject", "domain_id"),
)
