from __future__ import annotations

import base64
import os

import pytest
from sqlalchemy import create_engine

from errors import (
    AlreadyExists,
    DatabaseUnavailable,
    InvalidRequest,
    KeyDestroyed,
    KeyStateError,
    KeyUnavailable,
    NotFound,
    UnknownKeyVersion,
)
from tests.conftest import ACCESS, Database, assert_absent
from tiers.admin import add_domain, destroy_key, initialise, list_domains, list_keys, rotate_key
from tiers.deployment import Deployment
from tiers.identifiers import normalise
from tiers.pseudonyms import Pseudonym, base_pseudonym, domain_pseudonym, parse_for_domain
from tiers.storage import subjects
from tiers.tokenisation import pseudonymise_values

CARDS = ["4970101234560001", "4970101234560002", "4970101234560003"]


@pytest.mark.master_key_file
def test_initialise_is_idempotent_and_creates_one_development_key(database: Database) -> None:
    first = initialise(database.settings(), access=ACCESS)
    key_file = database.home / "master.key"
    content = key_file.read_bytes()
    second = initialise(database.settings(), access=ACCESS)
    assert first.generated_development_key
    assert (
        "base key",
        "checkpoint signing key",
        "hmac scheme",
        "audit domain",
        "attachment policy",
        "checkpoint store",
    ) == first.created
    assert not second.generated_development_key and () == second.created
    assert content == key_file.read_bytes()


@pytest.mark.master_key_file
def test_wrong_master_key_is_refused_at_open_and_at_init(database: Database) -> None:
    initialise(database.settings(), access=ACCESS)
    other = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(KeyUnavailable) as caught:
        Deployment.open(database.settings(master_key=other))
    assert caught.value.code == "wrong_master_key"
    with pytest.raises(KeyUnavailable):
        initialise(database.settings(master_key=other), access=ACCESS)


@pytest.mark.parametrize(
    "name", ["", "a", "Casino", "1casino", "casino!", "ca_sino", "a" * 33, "hub.v1"]
)
def test_bad_domain_names_are_refused(deployment: Deployment, name: str) -> None:
    with pytest.raises(InvalidRequest):
        add_domain(deployment, name=name, role="partner", access=ACCESS)
    assert ["audit"] == [d.name for d in list_domains(deployment, access=ACCESS)]


def test_domain_roles_and_duplicates(deployment: Deployment) -> None:
    with pytest.raises(InvalidRequest):
        add_domain(deployment, name="casino", role="admin", access=ACCESS)
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    with pytest.raises(AlreadyExists):
        add_domain(deployment, name="casino", role="hub", access=ACCESS)
    found = [(d.name, d.role) for d in list_domains(deployment, access=ACCESS)]
    assert [("audit", "audit"), ("casino", "partner")] == found


def test_rotation_rederives_every_stored_pseudonym(deployment: Deployment) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    old = pseudonymise_values(deployment, domain="casino", kind="card", values=CARDS, access=ACCESS)
    rotation = rotate_key(deployment, domain="casino", access=ACCESS)
    assert (rotation.old_version, rotation.new_version, rotation.reindexed) == (1, 2, 3)
    new = pseudonymise_values(
        deployment, domain="casino", kind="card", values=CARDS, register=False, access=ACCESS
    )
    with deployment.engine.connect() as connection:
        domain = deployment.domain(connection, "casino")
        ring = deployment.domain_keyring(connection, domain)
        for before, after in zip(old, new, strict=True):
            assert isinstance(before, str) and isinstance(after, str)
            p_old = parse_for_domain(before, domain="casino", keyring=ring)
            p_new = parse_for_domain(after, domain="casino", keyring=ring)
            assert (p_old.version, p_new.version) == (1, 2)
            assert p_old.value != p_new.value
            # Both versions resolve to the same subject, without the clear value.
            base_old = subjects.lookup(
                connection, domain_id=domain.id, version=1, value=p_old.value
            )
            base_new = subjects.lookup(
                connection, domain_id=domain.id, version=2, value=p_new.value
            )
            assert base_old is not None and base_old == base_new
    states = [
        (v.version, v.state.value) for v in list_keys(deployment, domain="casino", access=ACCESS)
    ]
    assert states == [(1, "verify-only"), (2, "active")]


def test_destroy_shreds_a_version_and_its_index(deployment: Deployment, database: Database) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    old = pseudonymise_values(deployment, domain="casino", kind="card", values=CARDS, access=ACCESS)
    with deployment.engine.connect() as connection:
        wrapped_before = connection.exec_driver_sql(
            "SELECT wrapped FROM keys WHERE owner='casino' AND version=1"
        ).scalar_one()
    with pytest.raises(KeyStateError):
        destroy_key(deployment, domain="casino", version=1, access=ACCESS)
    rotate_key(deployment, domain="casino", access=ACCESS)
    result = destroy_key(deployment, domain="casino", version=1, access=ACCESS)
    assert result.unlinked == 3
    with pytest.raises(KeyDestroyed):
        destroy_key(deployment, domain="casino", version=1, access=ACCESS)
    with pytest.raises(UnknownKeyVersion):
        destroy_key(deployment, domain="casino", version=5, access=ACCESS)
    with deployment.engine.connect() as connection:
        domain = deployment.domain(connection, "casino")
        ring = deployment.domain_keyring(connection, domain)
        assert subjects.count_index(connection, domain_id=domain.id, version=1) == 0
        assert subjects.count_index(connection, domain_id=domain.id, version=2) == 3
        assert isinstance(old[0], str)
        with pytest.raises(KeyDestroyed):
            parse_for_domain(old[0], domain="casino", keyring=ring)
    # The wrapped material is gone from the stored bytes, not just flagged.
    assert wrapped_before not in database.stored_bytes()


def test_unknown_domain_is_not_found(deployment: Deployment) -> None:
    for call in (
        lambda: rotate_key(deployment, domain="nowhere", access=ACCESS),
        lambda: list_keys(deployment, domain="nowhere", access=ACCESS),
        lambda: pseudonymise_values(
            deployment, domain="nowhere", kind="card", values=["12345678"], access=ACCESS
        ),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.code == "unknown_domain"


def test_audit_domains_issue_no_pseudonyms(deployment: Deployment) -> None:
    with pytest.raises(InvalidRequest):
        pseudonymise_values(
            deployment, domain="audit", kind="card", values=["12345678"], access=ACCESS
        )


def test_pseudonyms_match_the_pure_scheme(deployment: Deployment) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    (text,) = pseudonymise_values(
        deployment, domain="casino", kind="email", values=[" A@B.fr"], access=ACCESS
    )
    with deployment.engine.connect() as connection:
        base = base_pseudonym(
            deployment.base_keyring(connection).active, "email", normalise("email", "a@b.fr")
        )
        ring = deployment.domain_keyring(connection, deployment.domain(connection, "casino"))
    assert str(domain_pseudonym(ring.active, "casino", base)) == text
    assert isinstance(text, str) and Pseudonym.parse(text).domain == "casino"


def test_the_database_never_holds_the_clear_values(
    deployment: Deployment, database: Database
) -> None:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    emails = ["jeanne.martin@example.fr", "paul.durand@example.org"]
    pseudonymise_values(deployment, domain="casino", kind="email", values=emails, access=ACCESS)
    pseudonymise_values(deployment, domain="casino", kind="card", values=CARDS, access=ACCESS)
    rotate_key(deployment, domain="casino", access=ACCESS)
    assert_absent(database.stored_bytes(), [*emails, *CARDS], "the database")


def test_readiness_says_the_database_does_not_answer(deployment: Deployment) -> None:
    """A database that stops answering is DatabaseUnavailable (503), not a missing init."""
    deployment.engine.dispose()
    deployment.engine = create_engine("postgresql+psycopg://tiers@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseUnavailable) as refused:
        deployment.check_ready()
    assert "database_unavailable" == refused.value.code
