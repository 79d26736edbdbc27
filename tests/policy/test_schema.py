from __future__ import annotations

from pathlib import Path

import pytest

from policy import PolicyError, load_policy

SHIPPED = (Path(__file__).parents[2] / "policy" / "attachment.toml").read_bytes()


def test_the_shipped_policy_loads_and_is_versioned_by_its_hash() -> None:
    policy = load_policy(SHIPPED)
    assert policy.version.startswith("sha256:") and 71 == len(policy.version)
    assert {"casino", "galeries-lafayette", "caisse-epargne"} == set(policy.sg_partners)
    assert policy.version != load_policy(SHIPPED + b"\n# a comment\n").version


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("max_cards_per_customer = 4", 'max_cards_per_customer = "4"'),
            "[policy] max_cards_per_customer (line 9): must be a int",
        ),
        (
            ("max_cards_per_customer = 4", "max_cards_per_customer = true"),
            "[policy] max_cards_per_customer (line 9): must be a int",
        ),
        (
            ("allow_merge = true", "allow_merge = true\nallow_magic = true"),
            "[policy] allow_magic (line 14): unknown key",
        ),
        (("[transfer]", "[transfers]"), "[transfers] (line 20): unknown section"),
        (
            (
                'sg_partners = ["casino", "galeries-lafayette", "caisse-epargne"]',
                "sg_partners = []",
            ),
            "[policy] sg_partners (line 7): no partner may act as SG",
        ),
        (
            ('rule = "oldest_card"', 'rule = "youngest"'),
            "[reattachment] rule (line 28): must be one of",
        ),
        (
            ("max_cards_per_customer = 4", "max_cards_per_customer = 1"),
            "[policy] max_cards_per_customer (line 9): must be at least 2",
        ),
        (("min_days_between = 90\n", ""), "[transfer] min_days_between: missing"),
        (("one_card_per_partner = true", "one_card_per_partner = "), "not valid TOML"),
    ],
)
def test_bad_policies_name_the_key_and_line(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in SHIPPED.decode()
    with pytest.raises(PolicyError) as caught:
        load_policy(SHIPPED.decode().replace(old, new).encode())
    assert expected in caught.value.message
    assert "bad_policy" == caught.value.code
