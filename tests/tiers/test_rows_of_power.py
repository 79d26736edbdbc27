"""Rows that grant power, edited in the database as its administrator could: the service does
not obey them, `tiers check` lists them, and backups edited or rolled back are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from errors import Forbidden, InvalidFile, InvalidRequest, RowTampered
from keys import MasterKey, new_key_material
from tests.archives import read_members, write_members
from tests.conftest import ACCESS, Cli, Database
from tests.forgery import engine_of
from tiers.admin import add_domain, destroy_key, rotate_key
from tiers.backup import backup, restore, rotate_master_key
from tiers.checks import check_deployment
from tiers.clients import Authenticator, add_client, revoke_client
from tiers.deployment import Deployment
from tiers.settings import Settings
from tiers.tokenisation import pseudonymise_values


@pytest.fixture
def settings(database: Database) -> Settings:
    return database.settings(argon2_profile="test")


def _edit(database: Database, statement: str, **values: object) -> None:
    engine = engine_of(database)
    with engine.begin() as connection:
        connection.execute(text(statement), values)
    engine.dispose()


def _partner(deployment: Deployment) -> str:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    return add_client(
        deployment, access=ACCESS, name="casino-app", role="partner", domain="casino"
    ).token


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE clients SET role = 'admin', domain = NULL WHERE name = 'casino-app'",
        "UPDATE clients SET role = 'auditor', domain = NULL WHERE name = 'casino-app'",
        "UPDATE clients SET domain = 'sncf' WHERE name = 'casino-app'",
    ],
)
def test_a_client_given_powers_in_the_database_is_not_obeyed(
    deployment: Deployment, database: Database, edit: str
) -> None:
    token = _partner(deployment)
    authenticator = Authenticator(deployment)
    assert "partner" == authenticator.authenticate(token).role  # and now cached
    assert [] == check_deployment(deployment, access=ACCESS)
    _edit(database, edit)
    assert authenticator.cached(token) is None  # the cached verification does not stand
    with pytest.raises(RowTampered) as refused:
        authenticator.authenticate(token)
    assert "row_tampered" == refused.value.code
    found = check_deployment(deployment, access=ACCESS)
    assert ["client casino-app"] == [f"{f.kind} {f.name}" for f in found]


def test_a_revoked_client_revived_in_the_database_stays_revoked(
    deployment: Deployment, database: Database
) -> None:
    token = _partner(deployment)
    revoke_client(deployment, access=ACCESS, name="casino-app")
    _edit(database, "UPDATE clients SET active = :on, revoked_at = NULL", on=True)
    with pytest.raises(RowTampered):
        Authenticator(deployment).authenticate(token)


def test_swapped_key_states_are_not_used(deployment: Deployment, database: Database) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    rotate_key(deployment, access=ACCESS, domain="casino")
    (before,) = pseudonymise_values(
        deployment, access=ACCESS, domain="casino", kind="card", values=["12345678"]
    )
    assert str(before).startswith("casino.v2.")
    _edit(
        database,
        "UPDATE keys SET state = CASE WHEN version = 1 THEN 'active' ELSE 'verify-only' END "
        "WHERE owner = 'casino' AND purpose = 'pseudonym'",
    )
    with pytest.raises(RowTampered):
        pseudonymise_values(
            deployment, access=ACCESS, domain="casino", kind="card", values=["12345678"]
        )
    found = check_deployment(deployment, access=ACCESS)
    assert ["keyring casino/pseudonym"] == [f"{f.kind} {f.name}" for f in found]


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE domains SET blind_only = :no WHERE name = 'casino'",  # clear identifiers let in
        "UPDATE domains SET card_luhn = :yes WHERE name = 'casino'",  # cards checked otherwise
        "UPDATE domains SET role = 'hub' WHERE name = 'casino'",
        "UPDATE domains SET seal = NULL WHERE name = 'casino'",
    ],
)
def test_a_domain_edited_in_the_database_is_not_used(
    deployment: Deployment, database: Database, edit: str
) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner", blind_only=True)
    with pytest.raises(Forbidden) as refused:
        pseudonymise_values(
            deployment, access=ACCESS, domain="casino", kind="card", values=["12345678"]
        )
    assert "blind_only" == refused.value.code
    assert [] == check_deployment(deployment, access=ACCESS)
    _edit(database, edit, yes=True, no=False)
    with pytest.raises(RowTampered) as tampered:  # the running process sees the edit at once
        pseudonymise_values(
            deployment, access=ACCESS, domain="casino", kind="card", values=["12345678"]
        )
    assert "row_tampered" == tampered.value.code
    found = check_deployment(deployment, access=ACCESS)
    assert ["domain casino"] == [f"{f.kind} {f.name}" for f in found]


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE meta SET value = 'oprf' WHERE name = 'scheme'",
        "DELETE FROM meta WHERE name = 'scheme'",
    ],
)
def test_a_scheme_changed_in_the_database_stops_every_domain(
    deployment: Deployment, database: Database, edit: str
) -> None:
    """The domains' seals bind the scheme: pseudonyms computed under another scheme than the
    deployment's would name no one it knows. The next process to open refuses every domain."""
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    _edit(database, edit)
    reopened = Deployment.open(database.settings())
    try:
        with pytest.raises(RowTampered):
            pseudonymise_values(
                reopened, access=ACCESS, domain="casino", kind="card", values=["12345678"]
            )
        found = check_deployment(reopened, access=ACCESS)
    finally:
        reopened.close()
    assert {"domain audit", "domain casino"} == {f"{f.kind} {f.name}" for f in found}
    assert all("scheme" in f.why for f in found)


def test_a_domain_deleted_in_the_database_is_found_by_the_log(
    deployment: Deployment, database: Database
) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    add_domain(deployment, access=ACCESS, name="sncf", role="partner")
    assert [] == check_deployment(deployment, access=ACCESS)
    _edit(database, "DELETE FROM domains WHERE name = 'casino'")
    (finding,) = check_deployment(deployment, access=ACCESS)
    assert ("domain", "casino") == (finding.kind, finding.name)
    assert "no row" in finding.why


def test_init_seals_the_domains_of_a_database_made_before_their_seals(
    initialised_cli: Cli, database: Database
) -> None:
    """Trust on first use, as for the other rows of power: `tiers init` seals what has no seal
    (and says so); until then the domain is not used."""
    _edit(database, "UPDATE domains SET seal = NULL")
    assert 1 == initialised_cli("check").exit_code
    refused = initialised_cli("pseudonymise", "--domain", "casino", "--kind", "card", "4970101234")
    assert "row_tampered" in refused.stderr
    # audit, casino, hub and sncf
    assert "seals of 4 rows of power" in initialised_cli.ok("init").stdout
    assert "no finding" in initialised_cli.ok("check").stdout
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", "4970101234")


def test_tiers_check_exits_1_and_names_the_row(initialised_cli: Cli, database: Database) -> None:
    assert "no finding" in initialised_cli.ok("check").stdout
    assert "no alerts" in initialised_cli.ok("audit", "alerts").stdout
    initialised_cli.ok("client", "add", "casino-app", "--role", "partner", "--domain", "casino")
    _edit(database, "UPDATE clients SET role = 'admin', domain = NULL")
    result = initialised_cli("check")
    assert 1 == result.exit_code
    assert "client casino-app: fails its seal" in result.stderr
    alerts = initialised_cli("audit", "alerts")
    assert 3 == alerts.exit_code  # what a monitor watches
    assert "row_tampered\tclient:casino-app" in alerts.stdout


def test_a_master_key_rotation_reseals_every_row(
    deployment: Deployment, database: Database
) -> None:
    token = _partner(deployment)
    rotate_master_key(
        deployment, access=ACCESS, new_master=MasterKey(new_key_material(), source="test")
    )
    assert [] == check_deployment(deployment, access=ACCESS)
    assert "casino-app" == Authenticator(deployment).authenticate(token).name


def test_a_backup_edited_after_it_was_made_is_refused(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    _partner(deployment)
    archive = tmp_path / "tiers.backup"
    backup(deployment, access=ACCESS, output=archive)
    members = read_members(archive)
    members["database.jsonl"] = members["database.jsonl"].replace(
        b'"role": "partner"', b'"role": "admin"'
    )
    edited = write_members(members, tmp_path / "edited.backup")
    target = Settings(home=tmp_path / "restored", **database.master_key_settings())  # type: ignore[arg-type]
    with pytest.raises(InvalidFile) as refused:
        restore(target, access=ACCESS, archive_path=edited)
    assert "bad_backup_seal" == refused.value.code
    assert not (tmp_path / "restored" / "tiers.db").exists()
    manifest = json.loads(members["manifest.json"])
    assert manifest["seal"].startswith("hmac-sha256:")


def test_a_backup_behind_the_checkpoint_store_is_refused(
    deployment: Deployment, database: Database, tmp_path: Path
) -> None:
    """Restoring an older backup over a deployment whose checkpoints went further would roll
    the log back: refused, the store being the same."""
    archive = tmp_path / "tiers.backup"
    backup(deployment, access=ACCESS, output=archive)
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    deployment.sign_pending()
    target = Settings(
        home=tmp_path / "restored",
        **database.master_key_settings(),  # type: ignore[arg-type]
        checkpoint_dir=database.home / "checkpoints",
    )
    with pytest.raises(InvalidRequest) as refused:
        restore(target, access=ACCESS, archive_path=archive)
    assert "backup_behind_store" == refused.value.code


def test_a_tampered_signing_keyring_stops_writes_and_is_listed(
    deployment: Deployment, database: Database, cli: Cli
) -> None:
    _edit(
        database,
        "UPDATE keys SET state = 'verify-only' WHERE owner = '_service' AND purpose = 'signing'",
    )
    result = cli("check")
    assert 1 == result.exit_code
    assert "keyring _service/signing: fails its seal" in result.stderr
    reopened = Deployment.open(database.settings())
    try:
        assert reopened.log_fault is not None and "row_tampered" == reopened.log_fault.code
    finally:
        reopened.close()


def _row(database: Database, statement: str) -> dict[str, object]:
    engine = engine_of(database)
    with engine.connect() as connection:
        row = connection.execute(text(statement)).mappings().one()
    engine.dispose()
    return dict(row)


def test_a_revocation_rolled_back_with_the_old_seal_is_found(
    deployment: Deployment, database: Database
) -> None:
    """The seal holds (the row and its seal are the old ones, both genuine), but the log shows
    the revocation: tiers check names the client."""
    _partner(deployment)
    before = _row(database, "SELECT * FROM clients WHERE name = 'casino-app'")
    revoke_client(deployment, access=ACCESS, name="casino-app")
    assert [] == check_deployment(deployment, access=ACCESS)
    _edit(
        database,
        "UPDATE clients SET active = :active, revoked_at = NULL, "
        "credential_version = :version, seal = :seal WHERE name = 'casino-app'",
        active=before["active"],
        version=before["credential_version"],
        seal=before["seal"],
    )
    (finding,) = check_deployment(deployment, access=ACCESS)
    assert ("client", "casino-app") == (finding.kind, finding.name)
    assert "revocation" in finding.why


def test_a_destroyed_key_version_put_back_with_its_old_seal_is_found(
    deployment: Deployment, database: Database
) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    rotate_key(deployment, access=ACCESS, domain="casino")
    where = "owner = 'casino' AND purpose = 'pseudonym'"
    old_row = _row(database, f"SELECT * FROM keys WHERE {where} AND version = 1")  # noqa: S608
    old_seal = _row(database, f"SELECT seal FROM keyring_seals WHERE {where}")["seal"]  # noqa: S608
    destroy_key(deployment, access=ACCESS, domain="casino", version=1)
    _edit(
        database,
        f"UPDATE keys SET state = :state, wrapped = :wrapped WHERE {where} AND version = 1",  # noqa: S608
        state=old_row["state"],
        wrapped=old_row["wrapped"],
    )
    _edit(database, f"UPDATE keyring_seals SET seal = :seal WHERE {where}", seal=old_seal)  # noqa: S608
    (finding,) = check_deployment(deployment, access=ACCESS)
    assert ("keyring", "casino/pseudonym") == (finding.kind, finding.name)
    assert "destroyed" in finding.why


def test_tiers_check_reports_integrity_faults(initialised_cli: Cli, database: Database) -> None:
    """What migration 0010 no longer makes the database check, checked in production."""
    initialised_cli.ok("pseudonymise", "--domain", "casino", "--kind", "card", "49701012345678")
    _edit(database, "DELETE FROM subjects")  # the index entry and the card now name nothing
    result = initialised_cli("check")
    assert 1 == result.exit_code
    assert "integrity pseudonym_index.subject dangling: 1 row" in result.stderr
    assert "integrity cards.base dangling: 1 row" in result.stderr
    for table in ("pseudonym_index", "hub_keys", "cards"):  # what named the lost subject
        _edit(database, f"DELETE FROM {table}")  # noqa: S608 - a name of this test's
    assert "no finding" in initialised_cli.ok("check").stdout
