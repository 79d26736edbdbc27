"""Several pseudonymise requests made together (the API's group commit) give each request what
it gets alone: its answers, its registrations and its own access-log entry; a refused request
makes the whole group roll back with nothing recorded."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import AuditEntry
from errors import DomainHidden, InvalidIdentifier, TiersError
from tests.conftest import ACCESS, NOW, Database
from tests.tiers.test_links import hub_key
from tiers.admin import add_domain
from tiers.audit_ops import verify_stored
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.resolution import resolve, resolve_together
from tiers.tokenisation import (
    ValuesCall,
    may_go_together,
    pseudonymise_together,
    pseudonymise_values,
)

PARTNERS = ("casino", "sncf")
# Valid and invalid values of each kind (the invalid ones are rejected, never registered).
VALUES = {
    "card": ["4970101234560001", "4970 1012 3456 0002", "4970101234560003", "12ab", ""],
    "email": ["Jean.Dupont@Example.fr", "marie@example.org", "no-at-sign", "a@b"],
}


@pytest.fixture
def partners(deployment: Deployment) -> Deployment:
    for name in (*PARTNERS, "hub"):
        add_domain(deployment, access=ACCESS, name=name, role="hub" if name == "hub" else "partner")
    return deployment


def _access(domain: str, n: int) -> Access:
    return Access(f"client:{domain}-app", "partner", "test", NOW, f"r-{n}", domain=domain)


@st.composite
def _requests(draw: st.DrawFn) -> list[ValuesCall]:
    requests = []
    for n in range(draw(st.integers(1, 6))):
        domain = draw(st.sampled_from(PARTNERS))
        kind = draw(st.sampled_from(sorted(VALUES)))
        values = draw(st.lists(st.sampled_from(VALUES[kind]), min_size=1, max_size=4))
        requests.append(ValuesCall(_access(domain, n), domain, kind, values, draw(st.booleans())))
    return requests


def _answer(results: list[str | InvalidIdentifier]) -> list[str]:
    return [r.code if isinstance(r, InvalidIdentifier) else r for r in results]


def _entry(entry: AuditEntry) -> AuditEntry:
    """An entry without its place in the log (its sequence number and predecessor)."""
    return replace(entry, seq=0, prev="")


@settings(max_examples=30)
@given(requests=_requests())
def test_a_group_gives_each_request_what_it_gets_alone(
    partners: Deployment, database: Database, requests: list[ValuesCall]
) -> None:
    before = len(database.audit_entries())
    together = pseudonymise_together(partners, requests)
    group_entries = database.audit_entries()[before:]
    registered = database.rows()
    alone = [
        pseudonymise_values(
            partners,
            access=r.access,
            domain=r.domain,
            kind=r.kind,
            values=r.values,
            register=r.register,
        )
        for r in requests
    ]
    alone_entries = database.audit_entries()[before + len(requests) :]
    assert [_answer(a) for a in together] == [_answer(a) for a in alone]
    # One entry per request, in order, each the one the request writes alone.
    assert [_entry(e) for e in group_entries] == [_entry(e) for e in alone_entries]
    assert [e.request_id for e in group_entries] == [r.access.request_id for r in requests]
    for request, answer, entry in zip(requests, together, group_entries, strict=True):
        distinct = {a for a in answer if isinstance(a, str)}  # one pseudonym per customer
        assert entry.detail["registered"] == (len(distinct) if request.register else 0)
    # Alone, the requests register nothing the group did not.
    assert database.rows() == registered
    written = len(database.audit_entries())
    assert verify_stored(partners, access=ACCESS).entries == written


def test_a_group_registers_only_what_its_registering_requests_ask_for(
    partners: Deployment, database: Database
) -> None:
    before = database.rows()
    looked_up = ValuesCall(_access("casino", 1), "casino", "card", ["4970101234560001"], False)
    pseudonymise_together(partners, [looked_up, replace(looked_up, values=["4970101234560009"])])
    assert database.rows() == before
    registering = replace(looked_up, register=True)
    pseudonymise_together(partners, [looked_up, registering])
    after = database.rows()
    assert len(after["subjects"]) == len(before["subjects"]) + 1
    assert len(after["cards"]) == len(before["cards"]) + 1


@pytest.mark.parametrize(
    ("refused", "error"),
    [
        (ValuesCall(_access("casino", 2), "sncf", "card", ["4970101234560001"]), DomainHidden),
        (ValuesCall(_access("casino", 2), "casino", "iban", ["4970101234560001"]), TiersError),
        (ValuesCall(ACCESS, "nowhere", "card", ["4970101234560001"]), TiersError),
    ],
    ids=["other partner's domain", "unknown kind", "unknown domain"],
)
def test_one_refused_request_rolls_the_group_back_and_records_nothing(
    partners: Deployment, database: Database, refused: ValuesCall, error: type[Exception]
) -> None:
    fine = ValuesCall(_access("casino", 1), "casino", "card", ["4970101234560004"])
    rows, entries = database.rows(), database.audit_entries()
    with pytest.raises(error):
        pseudonymise_together(partners, [fine, refused])
    assert database.rows() == rows
    assert database.audit_entries() == entries


def test_what_is_refused_before_the_transaction_does_not_go_in_a_group() -> None:
    fine = ValuesCall(_access("casino", 1), "casino", "card", ["4970101234560004"])
    assert may_go_together(fine)
    assert not may_go_together(replace(fine, domain="sncf"))  # another partner's domain
    assert not may_go_together(replace(fine, kind="iban"))
    hub = Access("hub-app", "hub", "test", NOW, "h-1", domain="hub")
    assert not may_go_together(replace(fine, access=hub, domain="hub"))  # not the hub's right
    # An unknown domain is only found in the transaction: the group is refused then.
    assert may_go_together(replace(fine, access=ACCESS, domain="nowhere"))


def test_link_resolutions_together_give_each_request_what_it_gets_alone(
    partners: Deployment, database: Database
) -> None:
    cards = ["4970101234560001", "4970101234560003", "4970101234560005"]
    pseudonymise_values(
        partners, access=_access("casino", 0), domain="casino", kind="card", values=cards
    )
    keys = [hub_key(partners, "casino", card) for card in cards]
    hub = [Access("hub-app", "hub", "test", NOW, f"h-{n}", domain="hub") for n in range(4)]
    requests = [(hub[0], keys[0]), (hub[1], keys[2]), (hub[2], keys[1]), (hub[3], keys[0])]
    before = len(database.audit_entries())
    together = resolve_together(partners, requests)
    group_entries = database.audit_entries()[before:]
    alone = [resolve(partners, access=a, linking_keys=[k], strict=True) for a, k in requests]
    assert together == alone
    assert [_entry(e) for e in group_entries] == [
        _entry(e) for e in database.audit_entries()[before + len(requests) :]
    ]
    assert [e.request_id for e in group_entries] == ["h-0", "h-1", "h-2", "h-3"]
    # An unknown key, or a client that may not resolve, refuses the whole group: nothing kept.
    entries = database.audit_entries()
    # (a key of the right form that no card has: its last characters changed, never to
    # themselves, which a key ending in "aa" once in 1,024 runs made "unknown" a known key)
    unknown = keys[0][:-2] + ("bb" if keys[0].endswith("aa") else "aa")
    for refused in [(hub[0], unknown), (_access("casino", 9), keys[0])]:
        with pytest.raises(TiersError):
            resolve_together(partners, [*requests, refused])
        assert database.audit_entries() == entries
