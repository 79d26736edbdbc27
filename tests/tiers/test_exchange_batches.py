"""Exchange rows are keyed, and campaign keys routed, in batches; what is delivered is what
taking them one by one gives.

Exchanges: two twin deployments (the second restored from a backup of the first, so the same
keys and the same cards) receive the same files in the same order: the first keys them in
batches of any size, the second one row at a time. Their deliveries, rejects and counts must be
equal, file after file, including where a row's pseudonym names a card that a clear number
registers earlier, or later, in the same batch.

Campaigns: each key goes where resolving it alone (another code path) says, in any batch.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ACCESS, Database
from tests.tiers.test_exchanges import HUB, alliance, partner  # noqa: F401 - alliance: a fixture
from tiers.admin import destroy_key, rotate_key
from tiers.backup import backup, restore
from tiers.campaigns import send_campaign
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange, withdraw_customer
from tiers.identifiers import get_kind
from tiers.inbox import ack_delivery, delivery_file, list_inbox
from tiers.resolution import Resolution, resolve
from tiers.settings import Settings
from tiers.tokenisation import Tokeniser, pseudonymise_values

CASINO = partner("casino", 20)
# What a row's card cell holds: a fresh card (by its number within the example) in clear or as
# its Casino pseudonym; a card linked to another partner's; a withdrawn card; a malformed
# number or pseudonym; a pseudonym nobody registered; one of a destroyed key version, and one
# of a version that never existed.
FRESH = st.tuples(st.sampled_from(["clear", "pseudonym"]), st.integers(0, 1))
FIXED = ["linked", "withdrawn", "malformed", "bad_pseudonym", "unknown", "destroyed", "no_version"]
CELLS = st.one_of(FRESH, st.tuples(st.sampled_from(FIXED), st.just(0)))
MOSTLY = st.sampled_from([True, True, True, False])
ROWS = st.lists(st.tuples(CELLS, MOSTLY, MOSTLY), min_size=1, max_size=12)
# A card's pseudonym before, and after, the row that gives its number in clear (same batch).
AROUND = [
    (("pseudonym", 0), True, True),
    (("clear", 0), True, True),
    (("pseudonym", 0), True, True),
]
# Every way of refusing a row, once (the random examples need not reach them all).
EVERY = [((kind, 0), True, True) for kind in FIXED] + [
    (("clear", 1), False, True),  # a bad amount
    (("clear", 1), True, False),  # a short row
]


@pytest.fixture
def twin(alliance: Deployment, database: Database, tmp_path: Path) -> Iterator[Deployment]:  # noqa: F811
    rotate_key(alliance, access=ACCESS, domain="casino")  # v2 active, v1 verify-only
    destroy_key(alliance, access=ACCESS, domain="casino", version=1)
    enrol_cards(alliance, access=partner("casino", 7), domain="casino", values=["10000099"])
    withdraw_customer(alliance, access=partner("casino", 8), domain="casino", card="10000099")
    archive = tmp_path / "twin.backup"
    backup(alliance, access=ACCESS, output=archive)
    target = Settings(home=tmp_path / "twin", **database.master_key_settings())  # type: ignore[arg-type]
    restore(target, access=ACCESS, archive_path=archive)
    opened = Deployment.open(target)
    yield opened
    opened.close()


def _received(deployment: Deployment, report_delivery: str) -> tuple[str, str]:
    """The hub's delivery and the sender's rejects (acknowledged, so that each is read once;
    the translation file of the fixture's key rotation is not a reject)."""
    with delivery_file(deployment, access=HUB, delivery_id=report_delivery) as handle:
        delivered = handle.read().decode()
    rejects = ""
    for waiting in list_inbox(deployment, access=CASINO):
        if waiting.kind != "rejects":
            continue
        with delivery_file(deployment, access=CASINO, delivery_id=waiting.id) as handle:
            rejects += handle.read().decode()
        ack_delivery(deployment, access=CASINO, delivery_id=waiting.id)
    return delivered, rejects


def test_a_delivery_is_the_same_whatever_the_batch(
    alliance: Deployment,  # noqa: F811
    twin: Deployment,
) -> None:
    with alliance.transaction() as connection:
        tokeniser = Tokeniser.open(alliance, connection, "casino")
    examples = itertools.count()

    def card_cell(kind: str, number: int, example: int) -> str:
        fresh = f"4{example:04d}{number:03d}"  # a card no other example uses
        return {
            "clear": fresh,
            "pseudonym": tokeniser.tokenise(get_kind("card"), fresh)[2],
            "linked": "10000001",
            "withdrawn": "10000099",
            "malformed": "1234-x",
            "bad_pseudonym": "casino.v2.not-base32",
            "unknown": "casino.v2." + "a" * 32,
            "destroyed": "casino.v1." + "a" * 32,
            "no_version": "casino.v9." + "a" * 32,
        }[kind]

    @given(rows=ROWS, batch=st.integers(1, 13))
    @example(rows=AROUND, batch=3)
    @example(rows=EVERY, batch=4)
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(rows: list[tuple[tuple[str, int], bool, bool]], batch: int) -> None:
        example = next(examples)
        lines = ["card,date,amount"]
        for (kind, number), good_amount, whole in rows:
            cell = card_cell(kind, number, example)
            lines.append(f"{cell},2026-11-02,{'1.50' if good_amount else 'x'}" if whole else cell)
        content = ("\n".join(lines) + "\n").encode()
        answers = []
        for deployment, size in ((alliance, batch), (twin, 1)):
            report = send_exchange(
                deployment,
                access=CASINO,
                domain="casino",
                exchange_type="purchases",
                source=io.BytesIO(content),
                rows_per_batch=size,
            )
            answers.append(
                (
                    (report.rows_in, report.rows_out, report.rows_rejected),
                    report.first_rejects,
                    *_received(deployment, report.delivery),
                )
            )
        assert answers[0] == answers[1]
        counts, _, delivered, rejects = answers[0]
        assert counts[1] == len(list(csv.reader(io.StringIO(delivered)))) - 1
        listed = [row for row in csv.reader(io.StringIO(rejects)) if row[0] != "line"]
        assert counts[2] == len({line for line, _, _ in listed})  # every rejected row is there
        codes = {code for _, _, code in listed}
        seen.update(codes)
        if counts[0] == counts[1]:
            assert not codes

    seen: set[str] = set()
    check()
    # The examples reached every way of refusing a row (EVERY sees to it).
    assert {
        "bad_character",
        "bad_pseudonym",
        "bad_decimal",
        "field_count",
        "withdrawn",
        "unknown_pseudonym",
        "key_destroyed",
        "unknown_key_version",
    } <= seen, seen


def test_a_campaign_routes_each_key_as_resolving_it_says_whatever_the_batch(
    alliance: Deployment,  # noqa: F811
) -> None:
    """Model: resolving a key one at a time (another code path) says where a campaign sends
    it; the SG receives its own pseudonym of the customer's card there, once."""
    send_exchange(  # customer X's key (Casino is its SG) and a loose SNCF card's key
        alliance,
        access=partner("sncf", 10),
        domain="sncf",
        exchange_type="purchases",
        source=io.BytesIO(b"card,date,amount\n70000001,2026-11-03,8\n70000009,2026-11-03,1\n"),
    )
    send_exchange(  # customer Y's key (Galeries Lafayette is its SG)
        alliance,
        access=partner("caisse-epargne", 10),
        domain="caisse-epargne",
        exchange_type="purchases",
        source=io.BytesIO(b"card,date,amount\n30000001,2026-11-03,5\n"),
    )
    keys = []
    for waiting in list_inbox(alliance, access=HUB):
        with delivery_file(alliance, access=HUB, delivery_id=waiting.id) as handle:
            keys += [row[0] for row in csv.reader(io.StringIO(handle.read().decode()))][1:]
    pool = [*keys, "hub.v1." + "a" * 32, "hub.v9." + "a" * 32, "junk"]
    # What each SG's own pseudonym of the customer's card there is (read, not registered).
    own = {
        sg: pseudonymise_values(
            alliance, access=partner(sg, 20), domain=sg, kind="card", values=[card], register=False
        )[0]
        for sg, card in (("casino", "10000001"), ("galeries-lafayette", "20000001"))
    }

    def expected(texts: list[str]) -> tuple[dict[str, set[object]], Counter[str]]:
        routed: dict[str, set[object]] = {}
        dropped: Counter[str] = Counter()
        for text in dict.fromkeys(texts):
            (answer,) = resolve(alliance, access=HUB, linking_keys=[text])
            if not isinstance(answer, Resolution):
                code = getattr(answer, "code", "")
                dropped["unknown" if code == "unknown_key" else "malformed"] += 1
            elif answer.attached_to is None:
                dropped["no_sg"] += 1
            elif own[answer.attached_to] in routed.get(answer.attached_to, set()):
                dropped["same_customer"] += 1
            else:
                routed.setdefault(answer.attached_to, set()).add(own[answer.attached_to])
        return routed, dropped

    @given(texts=st.lists(st.sampled_from(pool), max_size=12), batch=st.integers(1, 5))
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(texts: list[str], batch: int) -> None:
        report = send_campaign(
            alliance, access=HUB, name="model", linking_keys=texts, keys_per_batch=batch
        )
        routed, dropped = expected(texts)
        assert (dict(dropped), {sg: len(p) for sg, p in routed.items()}) == (
            report.dropped,
            report.per_sg,
        )
        for sg, delivery_id in report.deliveries.items():
            with delivery_file(alliance, access=partner(sg, 20), delivery_id=delivery_id) as file:
                rows = list(csv.reader(io.StringIO(file.read().decode())))
            assert ["pseudonym"] == rows[0]
            assert routed[sg] == {row[0] for row in rows[1:]}

    check()
