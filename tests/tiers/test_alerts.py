"""Dictionary-attack alerts: the access log is scanned per actor and clock hour."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from audit import CLIENT_EVENTS, Counts
from audit.entry import AuditEntry
from errors import Forbidden
from tests.conftest import ACCESS, NOW, Cli
from tiers.admin import add_domain
from tiers.alerts import ALERT_OF_CLIENT_EVENT, Thresholds, find_alerts, scan
from tiers.deployment import Deployment
from tiers.tokenisation import pseudonymise_values

PARTNER = replace(ACCESS, actor="casino-app", role="partner", domain="casino")


def entry(seq: int, actor: str, action: str, minutes: int, values: int, outcome: str) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        time=NOW + timedelta(minutes=minutes),
        actor=actor,
        role="partner",
        action=action,
        purpose="p",
        outcome=outcome,  # type: ignore[arg-type]
        request_id=f"r{seq}",
        prev="0" * 64,
        counts=Counts(records_in=values),
    )


calls = st.lists(
    st.tuples(
        st.sampled_from(["casino-app", "sncf-app", "anonymous"]),
        st.sampled_from(
            ["pseudonymise", "tokenise_file", "card_enrol", "card_associate", "whoami"]
        ),
        st.integers(0, 179),
        st.integers(0, 50),
        st.sampled_from(["ok", "ok", "denied", "error"]),
    ),
    max_size=60,
)


# What each action's entry counts toward the volume alert: its values, or two card numbers.
VALUES = {"pseudonymise": None, "tokenise_file": None, "card_enrol": None, "card_associate": 2}


@given(calls, st.integers(1, 200), st.integers(1, 5), st.integers(1, 3))
def test_scan_agrees_with_a_plain_count(
    rows: list[tuple[str, str, int, int, str]],
    values_limit: int,
    refusals_limit: int,
    associations_limit: int,
) -> None:
    entries = [entry(n, *row) for n, row in enumerate(rows)]
    found = scan(entries, Thresholds(values_limit, refusals_limit, associations_limit))
    expected = set()
    for hour in range(3):
        for actor in ("casino-app", "sncf-app", "anonymous"):
            in_hour = [r for r in rows if r[0] == actor and r[2] // 60 == hour]
            looked_up = sum(
                r[3] if VALUES[r[1]] is None else VALUES[r[1]]  # type: ignore[misc]
                for r in in_hour
                if r[4] == "ok" and r[1] in VALUES
            )
            refused = sum(1 for r in in_hour if r[4] != "ok")
            probing = sum(1 for r in in_hour if r[4] == "denied" and r[1] == "card_associate")
            start = NOW + timedelta(hours=hour)
            if looked_up > values_limit:
                expected.add(("volume", actor, start, looked_up))
            if refused > refusals_limit:
                expected.add(("refusals", actor, start, refused))
            if probing > associations_limit:
                expected.add(("association_refusals", actor, start, probing))
    assert expected == {(a.kind, a.actor, a.hour, a.observed) for a in found}
    assert [(a.hour, a.kind, a.actor) for a in found] == sorted(
        (a.hour, a.kind, a.actor) for a in found
    )


def test_a_partner_sweeping_card_numbers_is_flagged(deployment: Deployment) -> None:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    add_domain(deployment, access=ACCESS, name="sncf", role="partner")
    for batch in range(3):
        values = [str(10_000_000 + batch * 100 + n) for n in range(100)]
        pseudonymise_values(
            deployment, access=PARTNER, domain="casino", kind="card", values=values, register=False
        )
    for _ in range(3):  # probing a domain it may not use
        with contextlib.suppress(Forbidden):
            pseudonymise_values(
                deployment, access=PARTNER, domain="sncf", kind="card", values=["12345678"]
            )
    auditor = replace(ACCESS, actor="dpo", role="auditor", now=NOW + timedelta(minutes=5))
    found = find_alerts(deployment, access=auditor, thresholds=Thresholds(250, 2, 1))
    assert {("volume", "casino-app", 300), ("refusals", "casino-app", 3)} == {
        (a.kind, a.actor, a.observed) for a in found
    }
    assert [] == find_alerts(deployment, access=auditor, thresholds=Thresholds(300, 3, 1))
    # A day later, the default period (24 hours) no longer covers them.
    later = replace(auditor, now=NOW + timedelta(days=1, hours=1))
    assert [] == find_alerts(deployment, access=later, thresholds=Thresholds(1, 1, 1))


def test_the_alerts_command_exits_3_when_it_finds_something(initialised_cli: Cli) -> None:
    cli = initialised_cli
    cli.ok("card", "enrol", "--domain", "casino", "10000001", "10000002")
    assert "no alerts" in cli.ok("audit", "alerts").stdout
    for _ in range(3):
        cli("card", "associate", "1", "2", "--domain", "nowhere", "--other-domain", "sncf")
    flagged = cli("audit", "alerts", "--refusals-per-hour", "2")
    assert 3 == flagged.exit_code, flagged.stderr
    assert "refusals" in flagged.stdout and "operator" in flagged.stdout
    bad = cli("audit", "alerts", "--since", "2026-01-01", "--until", "2026-12-31")
    assert 1 == bad.exit_code and "[bad_period]" in bad.stderr


def test_every_client_event_has_an_alert_of_its_own() -> None:
    assert CLIENT_EVENTS == set(ALERT_OF_CLIENT_EVENT)
    assert len(CLIENT_EVENTS) == len(set(ALERT_OF_CLIENT_EVENT.values()))


def test_the_alerts_command_takes_the_association_refusals_threshold(initialised_cli: Cli) -> None:
    cli = initialised_cli
    cli.ok("card", "enrol", "--domain", "casino", "10000001")
    for other in ("79999991", "79999992"):
        refused = cli(
            "card", "associate", "10000001", other, "--domain", "casino", "--other-domain", "sncf"
        )
        assert 1 == refused.exit_code and "[association_refused]" in refused.stderr
    assert "no alerts" in cli.ok("audit", "alerts").stdout  # the default is 10 an hour
    flagged = cli("audit", "alerts", "--association-refusals-per-hour", "1")
    assert 3 == flagged.exit_code, flagged.stderr
    assert "association_refusals" in flagged.stdout and "operator" in flagged.stdout
