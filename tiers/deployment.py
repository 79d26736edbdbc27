"""A running `tiers` deployment: its settings, database engine and master key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from keys import Keyring, MasterKey
from tiers import keyrings
from tiers.errors import KeyUnavailable, NotFound, NotInitialised
from tiers.identifiers import NormalisationOptions
from tiers.settings import Settings
from tiers.storage import check_schema, domains, make_engine
from tiers.storage import meta as meta_repo
from tiers.storage.domains import DomainRecord

__all__ = ["MASTER_CHECK", "Deployment"]

MASTER_CHECK = "master_key_check"


@dataclass(slots=True)
class Deployment:
    """What every core operation runs against. Open with :meth:`open`, close when done."""

    settings: Settings
    engine: Engine
    master: MasterKey

    @classmethod
    def open(cls, settings: Settings) -> Deployment:
        """Open an initialised deployment.

        Raises :class:`NotInitialised` (no schema, no master key check value),
        :class:`KeyUnavailable` (the master key is missing or is not this database's) and
        :class:`~tiers.errors.ConfigurationError`.
        """
        master = settings.load_master_key()
        engine = make_engine(settings.resolved_database_url())
        try:
            check_schema(engine)
            with engine.connect() as connection:
                check = meta_repo.get(connection, name=MASTER_CHECK)
            if check is None:
                raise NotInitialised("the database has no master key check value; run `tiers init`")
            if not master.matches(check):
                raise KeyUnavailable(
                    f"the master key from {master.source} is not the one this database was "
                    "initialised with",
                    code="wrong_master_key",
                )
        except BaseException:
            engine.dispose()
            raise
        return cls(settings, engine, master)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def domain(self, connection: Connection, name: str) -> DomainRecord:
        """The domain called ``name``; raises :class:`NotFound`."""
        record = domains.get(connection, name=name)
        if record is None:
            raise NotFound(f"unknown domain {name!r}", code="unknown_domain")
        return record

    def keyring(self, connection: Connection, *, owner: str, purpose: str) -> Keyring:
        return keyrings.load_keyring(connection, self.master, owner=owner, purpose=purpose)

    def base_keyring(self, connection: Connection) -> Keyring:
        return self.keyring(connection, owner=keyrings.SERVICE_OWNER, purpose=keyrings.BASE_PURPOSE)

    def domain_keyring(self, connection: Connection, domain: DomainRecord) -> Keyring:
        return self.keyring(connection, owner=domain.name, purpose=keyrings.PSEUDONYM_PURPOSE)

    def normalisation(self, domain: DomainRecord) -> NormalisationOptions:
        return NormalisationOptions(
            card_luhn=domain.card_luhn, phone_region=self.settings.phone_region
        )
