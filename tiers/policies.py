"""The attachment policy in force: applied from a file, diffed before it is applied.

A new version never silently re-attaches anyone: ``diff`` reports (as counts per rule) whom it
would re-attach, and ``apply`` re-attaches exactly those, one logged decision each, in the same
transaction that switches the version.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from sqlalchemy import Connection

from audit import Action, Counts
from errors import NotInitialised
from policy import AttachmentPolicy, load_policy
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.storage import links as links_repo

__all__ = [
    "PolicyDiff",
    "apply_policy",
    "check_policy",
    "current_policy",
    "default_policy",
    "diff_policy",
]


def default_policy() -> bytes:
    """The policy file shipped with tiers (``policy/attachment.toml``)."""
    return resources.files("policy").joinpath("attachment.toml").read_bytes()


def current_policy(connection: Connection) -> AttachmentPolicy:
    stored = links_repo.active_policy(connection)
    if stored is None:
        raise NotInitialised(
            "no attachment policy is in force; run `tiers policy apply FILE`", code="no_policy"
        )
    return load_policy(stored[1])


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    old_version: str | None
    new_version: str
    customers: int
    reattach: dict[str, int] = field(default_factory=dict)
    grandfathered: dict[str, int] = field(default_factory=dict)
    # customer id -> (new SG partner or None to dissolve, card id or None)
    plan: dict[int, tuple[str | None, int | None]] = field(default_factory=dict, repr=False)


def _diff(connection: Connection, new: AttachmentPolicy) -> PolicyDiff:
    stored = links_repo.active_policy(connection)
    reattach: Counter[str] = Counter()
    grandfathered: Counter[str] = Counter()
    plan: dict[int, tuple[str | None, int | None]] = {}
    ids = links_repo.all_customers(connection)
    for customer_id in ids:
        customer = links_repo.customer(connection, customer_id=customer_id)
        assert customer is not None
        cards = links_repo.cards_of(connection, customer_id=customer_id)
        if len(cards) > new.max_cards_per_customer:
            grandfathered["link.max_cards"] += 1
        partners = [c.partner for c in cards]
        if new.one_card_per_partner and len(set(partners)) != len(partners):
            grandfathered["link.one_card_per_partner"] += 1
        if new.may_be_sg(customer.attached_to):
            continue
        eligible = sorted(
            (c for c in cards if new.may_be_sg(c.partner)),
            key=lambda c: (c.enrolled_at, c.partner, c.id),
        )
        if eligible:
            reattach["policy.sg_withdrawn"] += 1
            plan[customer_id] = (eligible[0].partner, eligible[0].id)
        else:
            reattach["policy.sg_withdrawn.dissolve"] += 1
            plan[customer_id] = (None, None)
    return PolicyDiff(
        stored[0] if stored else None,
        new.version,
        len(ids),
        dict(reattach),
        dict(grandfathered),
        plan,
    )


@audited(Action.POLICY_CHECK, domain_arg=None)
def check_policy(deployment: Deployment, *, access: Access, data: bytes) -> AttachmentPolicy:
    """Validate a policy file (raises :class:`policy.PolicyError` with the key and line)."""
    require(access, Action.POLICY_CHECK)
    policy = load_policy(data)
    with deployment.transaction() as connection:
        deployment.record(
            connection, access, action=Action.POLICY_CHECK, detail={"version": policy.version}
        )
    return policy


@audited(Action.POLICY_DIFF, domain_arg=None)
def diff_policy(deployment: Deployment, *, access: Access, data: bytes) -> PolicyDiff:
    """Dry run: whom the new version would re-attach, as counts per rule."""
    require(access, Action.POLICY_DIFF)
    policy = load_policy(data)
    with deployment.transaction() as connection:
        result = _diff(connection, policy)
        deployment.record(
            connection,
            access,
            action=Action.POLICY_DIFF,
            counts=Counts(records_in=result.customers),
            detail={"version": policy.version, "reattach": sum(result.reattach.values())},
        )
    return result


@audited(Action.POLICY_APPLY, domain_arg=None)
def apply_policy(deployment: Deployment, *, access: Access, data: bytes) -> PolicyDiff:
    """Put a new version in force and re-attach (logged, per customer) those it requires."""
    require(access, Action.POLICY_APPLY)
    policy = load_policy(data)
    with deployment.transaction() as connection:
        links_repo.lock(connection)
        result = _diff(connection, policy)
        for customer_id, (partner, card_id) in sorted(result.plan.items()):
            customer = links_repo.customer(connection, customer_id=customer_id)
            assert customer is not None
            if partner is None:
                links_repo.delete_customer(connection, customer_id=customer_id, base=customer.base)
                links_repo.add_attachment(
                    connection,
                    customer_id=customer_id,
                    partner_id=None,
                    card_id=None,
                    rule="policy.sg_withdrawn.dissolve",
                    policy_version=policy.version,
                    now=access.now,
                    actor=access.actor,
                )
                continue
            record = deployment.domain(connection, partner)
            assert card_id is not None
            links_repo.update_customer(
                connection,
                customer_id=customer_id,
                attached_to=record.id,
                attaching_card=card_id,
                rule="policy.sg_withdrawn",
                policy_version=policy.version,
                attached_at=access.now,
            )
            links_repo.add_attachment(
                connection,
                customer_id=customer_id,
                partner_id=record.id,
                card_id=card_id,
                rule="policy.sg_withdrawn",
                policy_version=policy.version,
                now=access.now,
                actor=access.actor,
            )
        links_repo.store_policy(
            connection,
            version=policy.version,
            name=policy.name,
            content=policy.source,
            now=access.now,
        )
        deployment.record(
            connection,
            access,
            action=Action.POLICY_APPLY,
            counts=Counts(records_in=result.customers, records_out=len(result.plan)),
            detail={"version": policy.version, "previous": result.old_version or "none"},
        )
    return result
