"""The deployment's pseudonym scheme (:mod:`tiers.schemes`): chosen once, and under ``oprf`` the
service's pseudonyms are the group elements a partner unblinds, converted between domains and
back to their subject without the identifier.

The expected values are computed apart from the service's code: the hash to the group by the
partner's implementation (``tiers_client.oprf``, written separately), the multiplications by
libsodium itself, the scalars from the keys the deployment holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pysodium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from tiers_client import oprf as partner_oprf
from tiers_client.oprf import identifier_input

from errors import ConfigurationError, NotFound
from tests.conftest import ACCESS, Database
from tiers import schemes
from tiers.admin import add_domain, initialise, rotate_key
from tiers.audit_ops import lookup_subject
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, tokenise_file
from tiers.identifiers import normalise
from tiers.pseudonyms import Pseudonym
from tiers.storage import subjects
from tiers.tokenisation import ElementTokeniser, Tokeniser, pseudonymise_values

EMAILS = st.from_regex(r"[a-z]{1,12}(\.[a-z]{1,8})?@[a-z]{2,10}\.(fr|com|org)", fullmatch=True)
CARDS = st.from_regex(r"[1-9][0-9]{7,15}", fullmatch=True)


@pytest.fixture
def oprf_deployment(database: Database) -> Iterator[Deployment]:
    settings_ = database.settings()
    initialise(settings_, access=ACCESS, scheme="oprf")
    deployment = Deployment.open(settings_)
    for name, role in (("casino", "partner"), ("sncf", "partner"), ("hub", "hub")):
        add_domain(deployment, access=ACCESS, name=name, role=role)
    yield deployment
    deployment.close()


def test_the_scheme_is_chosen_by_the_first_init(database: Database) -> None:
    settings_ = database.settings()
    assert initialise(settings_, access=ACCESS, scheme="oprf").scheme == "oprf"
    assert initialise(settings_, access=ACCESS).created == ()  # checks, keeps it
    for other, code in (("hmac", "scheme_fixed"), ("blind", "unknown_scheme")):
        with pytest.raises(ConfigurationError) as refused:
            initialise(settings_, access=ACCESS, scheme=other)
        assert refused.value.code == code
    deployment = Deployment.open(settings_)
    try:
        assert deployment.scheme == "oprf"
    finally:
        deployment.close()


def test_a_deployment_runs_hmac_unless_its_first_init_said_otherwise(
    deployment: Deployment,
) -> None:
    assert deployment.scheme == "hmac"
    with pytest.raises(ConfigurationError) as refused:
        initialise(deployment.settings, access=ACCESS, scheme="oprf")
    assert refused.value.code == "scheme_fixed"
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    [text] = pseudonymise_values(
        deployment, access=ACCESS, domain="casino", kind="email", values=["a@b.fr"]
    )
    assert isinstance(text, str) and len(Pseudonym.parse(text).value) == 20


def test_a_deployment_made_before_schemes_runs_hmac(deployment: Deployment) -> None:
    with deployment.engine.begin() as connection:
        connection.execute(text("DELETE FROM meta WHERE name = 'scheme'"))
    with pytest.raises(ConfigurationError) as refused:
        initialise(deployment.settings, access=ACCESS, scheme="oprf")  # it has keys already
    assert refused.value.code == "scheme_fixed"
    assert initialise(deployment.settings, access=ACCESS).created == ("hmac scheme",)
    reopened = Deployment.open(deployment.settings)
    try:
        assert reopened.scheme == "hmac"
    finally:
        reopened.close()


def _scalars(deployment: Deployment, domain: str) -> tuple[bytes, bytes]:
    """The base key's scalar and ``domain``'s active one, from the keys the deployment holds."""
    with deployment.reading() as connection:
        base = schemes.oprf_key(schemes.BASE_OWNER, deployment.base_keyring(connection).active)
        record = deployment.domain(connection, domain)
        key = schemes.oprf_key(domain, deployment.domain_keyring(connection, record).active)
    return base.secret, key.secret


def _times(scalar: bytes, kind: str, value: str) -> bytes:
    """``scalar·H(x)``, with the partner's hash and libsodium's multiplication."""
    point = partner_oprf.hash_to_group(identifier_input(kind, normalise(kind, value)))
    return bytes(pysodium.crypto_scalarmult_ristretto255(scalar, point))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind_value=st.one_of(st.tuples(st.just("email"), EMAILS), st.tuples(st.just("card"), CARDS)))
def test_oprf_pseudonyms_are_the_elements_a_partner_unblinds(
    oprf_deployment: Deployment, kind_value: tuple[str, str]
) -> None:
    kind, value = kind_value
    k_base, s_casino = _scalars(oprf_deployment, "casino")
    _, s_sncf = _scalars(oprf_deployment, "sncf")
    [text] = pseudonymise_values(
        oprf_deployment, access=ACCESS, domain="casino", kind=kind, values=[value]
    )
    assert isinstance(text, str)
    pseudonym = Pseudonym.parse(text)
    assert pseudonym.value == _times(s_casino, kind, value)
    with oprf_deployment.reading() as connection:
        scheme = schemes.pseudonymiser(oprf_deployment, connection)
        casino, sncf = (oprf_deployment.domain(connection, n) for n in ("casino", "sncf"))
        sncf_key = oprf_deployment.domain_keyring(connection, sncf).active
        wanted = (pseudonym.version, pseudonym.value)
        # Back to the subject without the value, and over to another domain from it.
        [base] = scheme.subjects(casino, [wanted]).values()
        assert base == _times(k_base, kind, value)
        assert scheme.values(sncf, sncf_key, [base]) == [_times(s_sncf, kind, value)]
        # The index holds what the service issued, under that same subject.
        assert subjects.lookup(connection, domain_id=casino.id, version=1, value=wanted[1]) == base


def test_cards_are_enrolled_and_found_by_their_blind_pseudonyms(
    oprf_deployment: Deployment,
) -> None:
    _, s_sncf = _scalars(oprf_deployment, "sncf")
    # What a partner unblinds, never seen by the service as a number.
    blind = str(Pseudonym("sncf", 1, _times(s_sncf, "card", "70000001")))
    twenty = str(Pseudonym("sncf", 1, bytes(range(20))))  # an hmac-scheme pseudonym's length
    identity = str(Pseudonym("sncf", 1, bytes(32)))
    results = enrol_cards(
        oprf_deployment, access=ACCESS, domain="sncf", values=[blind, twenty, identity, "sncf.v9"]
    )
    assert results[0] == blind
    assert [getattr(r, "code", None) for r in results[1:]] == [
        "unknown_pseudonym",
        "unknown_pseudonym",
        "bad_pseudonym",
    ]
    # The same card by its number: one card, one pseudonym.
    assert enrol_cards(oprf_deployment, access=ACCESS, domain="sncf", values=["70000001"]) == [
        blind
    ]
    entries = lookup_subject(
        oprf_deployment, access=ACCESS, domain="sncf", kind="card", value=blind
    )
    assert [e.action for e in entries if e.action == "card_enrol"] == ["card_enrol"] * 2


def test_a_rotation_re_derives_the_index_and_translates_as_blinding_does(
    oprf_deployment: Deployment,
) -> None:
    [old] = pseudonymise_values(
        oprf_deployment, access=ACCESS, domain="casino", kind="card", values=["10000001"]
    )
    rotated = rotate_key(oprf_deployment, access=ACCESS, domain="casino")
    assert (rotated.new_version, rotated.reindexed) == (2, 1)
    _, s_new = _scalars(oprf_deployment, "casino")
    new = str(Pseudonym("casino", 2, _times(s_new, "card", "10000001")))
    [again] = pseudonymise_values(
        oprf_deployment, access=ACCESS, domain="casino", kind="card", values=["10000001"]
    )
    assert again == new
    with oprf_deployment.reading() as connection:
        casino = oprf_deployment.domain(connection, "casino")
        bases = {
            version: subjects.lookup(
                connection, domain_id=casino.id, version=version, value=Pseudonym.parse(t).value
            )
            for version, t in ((1, old), (2, new))
        }
    assert bases[1] is not None and bases[1] == bases[2]


def test_a_subject_look_up_by_an_unknown_hmac_pseudonym_is_refused(deployment: Deployment) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    never = str(Pseudonym("casino", 1, bytes(20)))
    with pytest.raises(NotFound) as refused:
        lookup_subject(deployment, access=ACCESS, domain="casino", kind="card", value=never)
    assert refused.value.code == "unknown_pseudonym"
    [issued] = enrol_cards(deployment, access=ACCESS, domain="casino", values=["10000001"])
    assert isinstance(issued, str)
    # Under hmac, a pseudonym the service issued names its card, as its number does.
    assert enrol_cards(deployment, access=ACCESS, domain="casino", values=[issued]) == [issued]
    by_pseudonym = lookup_subject(
        deployment, access=ACCESS, domain="casino", kind="card", value=issued
    )
    assert {e.action for e in by_pseudonym} >= {"card_enrol"}


def test_a_file_under_oprf_gives_the_pseudonyms_of_the_calls(
    oprf_deployment: Deployment, tmp_path: Path
) -> None:
    lines = ["email;card"] + [f"c{i}@example.fr;{10000000 + i}" for i in range(300)] + ["x;1"]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    report = tokenise_file(
        oprf_deployment, access=ACCESS, source=source, output=out, domain="casino",
        columns=[ColumnSpec("email", "email"), ColumnSpec("card", "card")], workers=2,
        block_bytes=2048,
    )  # fmt: skip
    assert (report.rows_out, report.rows_rejected) == (300, 1)
    rows = [line.split(";") for line in out.read_text().splitlines()[1:]]
    emails = pseudonymise_values(
        oprf_deployment, access=ACCESS, domain="casino", kind="email",
        values=[f"c{i}@example.fr" for i in range(300)],
    )  # fmt: skip
    assert [row[0] for row in rows] == emails


def test_no_scalar_shows_in_a_repr(oprf_deployment: Deployment) -> None:
    k_base, s_casino = _scalars(oprf_deployment, "casino")
    with oprf_deployment.reading() as connection:
        tokeniser = Tokeniser.open(oprf_deployment, connection, "casino")
    assert isinstance(tokeniser, ElementTokeniser)
    shown = repr(tokeniser) + repr(tokeniser.element_base) + repr(tokeniser.element_key)
    for secret in (k_base, s_casino, tokeniser.element_key.forward, tokeniser.element_key.backward):
        assert secret.hex() not in shown and repr(secret) not in shown
