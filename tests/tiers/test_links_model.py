"""Model-based test of card links (hypothesis RuleBasedStateMachine) and a concurrency test.

Random sequences of enrol / associate / dissociate / transfer / policy change by random
partners, checked after every step against the invariants and against an independent model
of who is linked to whom and who is attached where.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select, text

from audit import parse_entry
from errors import NotFound, PolicyViolation
from tests.conftest import ACCESS, PARTNERS
from tests.tiers.test_links import hub_key
from tiers.cards import enrol_cards
from tiers.deployment import Deployment
from tiers.links import associate, dissociate, transfer
from tiers.policies import apply_policy, default_policy
from tiers.resolution import Resolution, resolve
from tiers.storage.tables import attachments, cards, customers, hub_keys

SG = {"casino", "galeries-lafayette", "caisse-epargne"}
NUMBERS = [f"{n:08d}" for n in range(10000001, 10000007)]
SEQUENCES = int(os.environ.get("TIERS_MODEL_SEQUENCES", "200"))
VARIANT = default_policy().replace(b'"casino", ', b"")  # casino no longer acts as SG

Key = tuple[str, str]  # (partner, number)


class Links(RuleBasedStateMachine):
    deployment: Deployment
    known = Bundle("cards")

    def __init__(self) -> None:
        super().__init__()
        with self.deployment.transaction() as connection:
            for table in (attachments, hub_keys):
                connection.execute(delete(table))
            connection.execute(cards.update().values(customer_id=None))
            connection.execute(delete(customers))
            connection.execute(delete(cards))
        self.day = 0
        self.sg = set(SG)
        self.enrolled: dict[Key, int] = {}  # card -> enrolment day
        self.groups: list[
            dict[str, object]
        ] = []  # {"cards": set[Key], "sg": str, "by": Key, "moved": int|None}
        apply_policy(self.deployment, access=self.at(), data=default_policy())

    def at(self) -> object:
        self.day += 1
        return replace(ACCESS, now=ACCESS.now + timedelta(days=self.day))

    def group_of(self, key: Key) -> dict[str, object] | None:
        return next((g for g in self.groups if key in g["cards"]), None)  # type: ignore[operator]

    def eligible_first(self, keys: set[Key], newest: bool = False) -> Key | None:
        found = sorted(
            (k for k in keys if k[0] in self.sg),
            key=lambda k: (self.enrolled[k], k[0]),
            reverse=newest,
        )
        return found[0] if found else None

    @rule(target=known, partner=st.sampled_from(PARTNERS), number=st.sampled_from(NUMBERS))
    def enrol(self, partner: str, number: str) -> Key:
        enrol_cards(self.deployment, access=self.at(), domain=partner, values=[number])
        self.enrolled.setdefault((partner, number), self.day)
        return (partner, number)

    @rule(first=known, second=known)
    def link_known(self, first: Key, second: Key) -> None:
        self.link(first[0], first[1], second[0], second[1])

    @rule(card=known)
    def unlink_known(self, card: Key) -> None:
        self.unlink(card[0], card[1])

    @rule(card=known)
    def move_known(self, card: Key) -> None:
        self.move(card[0], card[1])

    @rule(partner=st.sampled_from(PARTNERS), other=known)
    def unknown_cards_are_refused(self, partner: str, other: Key) -> None:
        for call in (
            lambda: associate(
                self.deployment,
                access=self.at(),
                domain=partner,
                card="99999999",
                other_domain=other[0],
                other_card=other[1],
            ),
            lambda: dissociate(self.deployment, access=self.at(), domain=partner, card="99999999"),
            lambda: transfer(self.deployment, access=self.at(), domain=partner, card="99999999"),
        ):
            with pytest.raises(NotFound):
                call()

    def last_code(self) -> str | None:
        with self.deployment.engine.connect() as connection:
            entry = connection.execute(
                text("SELECT entry FROM audit_entries ORDER BY seq DESC LIMIT 1")
            ).scalar_one()
        return parse_entry(entry.encode("ascii")).code

    def link(self, a: str, x: str, b: str, y: str) -> None:
        first, second = (a, x), (b, y)
        try:
            associate(
                self.deployment, access=self.at(), domain=a, card=x, other_domain=b, other_card=y
            )
        except NotFound:  # the caller's own card: it may know
            assert first not in self.enrolled
            return
        except PolicyViolation as refusal:  # one answer for every reason; the log says which
            assert "association_refused" == refusal.code
            reason = self.last_code()
            if second not in self.enrolled:
                assert "unknown_other_card" == reason
            else:
                assert reason is not None and reason.startswith("link.")
            return
        assert first in self.enrolled and second in self.enrolled and first != second
        ga, gb = self.group_of(first), self.group_of(second)
        if ga is not None and ga is gb:
            return
        if ga is None and gb is None:
            by = self.eligible_first({first, second})
            assert by is not None
            self.groups.append({"cards": {first, second}, "sg": by[0], "by": by, "moved": None})
        elif ga is not None and gb is not None:
            keep = min((ga, gb), key=lambda g: (self.enrolled[g["by"]], g["by"][0]))  # type: ignore[index]
            other = gb if keep is ga else ga
            keep["cards"] |= other["cards"]  # type: ignore[operator]
            self.groups.remove(other)
        else:
            group = ga or gb
            group["cards"].add(second if ga is not None else first)  # type: ignore[union-attr]

    def unlink(self, partner: str, number: str) -> None:
        key = (partner, number)
        try:
            dissociate(self.deployment, access=self.at(), domain=partner, card=number)
        except NotFound:
            assert key not in self.enrolled
            return
        group = self.group_of(key)
        if group is None:
            return
        group["cards"].discard(key)  # type: ignore[union-attr]
        remaining: set[Key] = group["cards"]  # type: ignore[assignment]
        if len(remaining) < 2:
            self.groups.remove(group)
            return
        if group["by"] == key or group["sg"] not in self.sg:
            by = self.eligible_first(remaining)
            if by is None:
                self.groups.remove(group)
                return
            group["by"], group["sg"] = by, by[0]

    def move(self, partner: str, number: str) -> None:
        key = (partner, number)
        try:
            transfer(self.deployment, access=self.at(), domain=partner, card=number)
        except NotFound:
            assert key not in self.enrolled
            return
        except PolicyViolation as refusal:
            group = self.group_of(key)
            expected = (
                "transfer.not_linked"
                if group is None
                else "transfer.not_sg"
                if partner not in self.sg
                else "transfer.too_soon"
            )
            assert expected == refusal.code
            return
        group = self.group_of(key)
        assert group is not None and partner in self.sg
        if group["sg"] != partner:
            moved = group["moved"]
            assert moved is None or self.day - moved >= 90  # type: ignore[operator]
            group["sg"], group["by"], group["moved"] = partner, key, self.day

    @rule(variant=st.booleans())
    def change_policy(self, variant: bool) -> None:
        apply_policy(
            self.deployment, access=self.at(), data=VARIANT if variant else default_policy()
        )
        self.sg = SG - {"casino"} if variant else set(SG)
        for group in list(self.groups):
            if group["sg"] not in self.sg:
                by = self.eligible_first(group["cards"])  # type: ignore[arg-type]
                if by is None:
                    self.groups.remove(group)
                else:
                    group["sg"], group["by"] = by[0], by

    @invariant()
    def the_database_keeps_the_invariants(self) -> None:
        with self.deployment.engine.connect() as connection:
            rows = connection.execute(select(cards.c.customer_id)).scalars().all()
            sizes: dict[int, int] = {}
            for customer_id in rows:
                if customer_id is not None:
                    sizes[customer_id] = sizes.get(customer_id, 0) + 1
            attached = connection.execute(select(customers.c.id, customers.c.attaching_card)).all()
        assert set(sizes) == {row.id for row in attached}
        assert all(size >= 2 for size in sizes.values())

    @invariant()
    def the_hub_sees_what_the_model_says(self) -> None:
        hub = replace(ACCESS, role="hub", domain="hub", actor="hub-app")
        keys = sorted(self.enrolled)
        if not keys:
            return
        views = resolve(
            self.deployment,
            access=hub,
            linking_keys=[hub_key(self.deployment, p, n) for p, n in keys],
        )
        for key, view in zip(keys, views, strict=True):
            assert isinstance(view, Resolution)
            group = self.group_of(key)
            if group is None:
                assert (None, 1) == (view.attached_to, len(view.cards))
                continue
            assert group["sg"] == view.attached_to
            assert view.attached_to in self.sg
            assert {p for p, _ in group["cards"]} == {c.partner for c in view.cards}  # type: ignore[attr-defined]
            assert len(group["cards"]) == len(view.cards)  # type: ignore[arg-type]
            assert view.attached_to in {c.partner for c in view.cards}


def test_card_links_follow_the_model(alliance: Deployment) -> None:
    Links.deployment = alliance
    run_state_machine_as_test(
        Links,
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


@pytest.mark.postgres
def test_concurrent_links_on_the_same_customers_end_consistent(alliance: Deployment) -> None:
    if alliance.engine.dialect.name != "postgresql":
        pytest.skip("the concurrency test runs against PostgreSQL")
    for partner in PARTNERS:
        enrol_cards(alliance, access=ACCESS, domain=partner, values=NUMBERS[:3])
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        for step in range(15):
            a, b = PARTNERS[(worker + step) % 4], PARTNERS[(worker + step + 1) % 4]
            number = NUMBERS[step % 3]
            try:
                if step % 3 == 2:
                    dissociate(alliance, access=ACCESS, domain=a, card=number)
                else:
                    associate(
                        alliance,
                        access=ACCESS,
                        domain=a,
                        card=number,
                        other_domain=b,
                        other_card=NUMBERS[(step + 1) % 3],
                    )
            except PolicyViolation:
                pass
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [] == errors
    with alliance.engine.connect() as connection:
        rows = connection.execute(select(cards.c.customer_id, cards.c.partner_id)).all()
        customer_ids = set(connection.execute(select(customers.c.id)).scalars())
    linked = [r.customer_id for r in rows if r.customer_id is not None]
    assert set(linked) == customer_ids
    assert all(linked.count(c) >= 2 for c in customer_ids)
    for customer_id in customer_ids:  # one card per partner per customer still holds
        partners = [r.partner_id for r in rows if r.customer_id == customer_id]
        assert len(partners) == len(set(partners))
