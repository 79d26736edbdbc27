"""Attachment policy files: TOML, validated against a fixed schema on load (pure).

Errors name the key and, when it can be found, its line; a policy that could leave a customer
with no management company is refused.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from errors import PolicyError

__all__ = ["AttachmentPolicy", "PolicyError", "load_policy"]

INITIAL_RULES = ("first_enrolment", "requesting_partner")
REATTACHMENT_RULES = ("oldest_card", "most_recent_enrolment")
_NAME = re.compile(r"[a-z][a-z0-9-]{1,31}")

# section -> key -> (type, required)
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "policy": {
        "name": (str, True),
        "sg_partners": (list, True),
        "max_cards_per_customer": (int, True),
        "one_card_per_partner": (bool, True),
        "allow_merge": (bool, True),
    },
    "initial": {"rule": (str, True)},
    "transfer": {"allowed": (bool, True), "min_days_between": (int, True)},
    "reattachment": {"rule": (str, True)},
}


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    """A validated policy and its version (``sha256:`` of the file's bytes)."""

    version: str
    name: str
    sg_partners: frozenset[str]
    max_cards_per_customer: int
    one_card_per_partner: bool
    allow_merge: bool
    initial_rule: str
    transfer_allowed: bool
    transfer_min_days: int
    reattachment_rule: str
    source: str

    def may_be_sg(self, partner: str) -> bool:
        return partner in self.sg_partners


def _line_of(text: str, section: str, key: str | None) -> str:
    pattern = (
        rf"^[ \t]*\[{re.escape(section)}\]" if key is None else rf"^[ \t]*{re.escape(key)}[ \t]*="
    )
    start = 0
    if key is not None:
        header = re.search(rf"^[ \t]*\[{re.escape(section)}\]", text, re.M)
        start = header.end() if header else 0
    found = re.compile(pattern, re.M).search(text, start)
    return f" (line {text.count(chr(10), 0, found.start()) + 1})" if found else ""


def _fail(text: str, section: str, key: str | None, why: str) -> PolicyError:
    where = f"[{section}]" + (f" {key}" if key else "")
    return PolicyError(f"policy {where}{_line_of(text, section, key)}: {why}")


def _checked(raw: dict[str, Any], text: str) -> dict[str, dict[str, Any]]:
    for section, values in raw.items():
        if section not in _SCHEMA:
            raise _fail(text, section, None, "unknown section")
        if not isinstance(values, dict):
            raise _fail(text, section, None, "must be a table")
        for key, value in values.items():
            if key not in _SCHEMA[section]:
                raise _fail(text, section, key, "unknown key")
            expected, _ = _SCHEMA[section][key]
            # bool is an int in Python: an integer key must not accept true/false.
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                name = expected.__name__ if isinstance(expected, type) else "value"
                raise _fail(text, section, key, f"must be a {name}")
    for section, keys in _SCHEMA.items():
        for key, (_, required) in keys.items():
            if required and key not in raw.get(section, {}):
                raise _fail(text, section, key, "missing")
    return raw


def load_policy(data: bytes) -> AttachmentPolicy:
    """Parse and validate a policy file; raises :class:`PolicyError` with the key and line."""
    try:
        text = data.decode("utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError:
        raise PolicyError("the policy file is not UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"the policy file is not valid TOML: {error}") from None
    table = _checked(raw, text)
    policy, initial = table["policy"], table["initial"]
    transfer, reattachment = table["transfer"], table["reattachment"]
    partners = policy["sg_partners"]
    if not partners:
        raise _fail(
            text, "policy", "sg_partners", "no partner may act as SG: customers would have none"
        )
    if not all(isinstance(p, str) and _NAME.fullmatch(p) for p in partners):
        raise _fail(text, "policy", "sg_partners", "must list domain names")
    if policy["max_cards_per_customer"] < 2:
        raise _fail(
            text, "policy", "max_cards_per_customer", "must be at least 2 (a link is two cards)"
        )
    if initial["rule"] not in INITIAL_RULES:
        raise _fail(text, "initial", "rule", f"must be one of {', '.join(INITIAL_RULES)}")
    if reattachment["rule"] not in REATTACHMENT_RULES:
        raise _fail(text, "reattachment", "rule", f"must be one of {', '.join(REATTACHMENT_RULES)}")
    if transfer["min_days_between"] < 0:
        raise _fail(text, "transfer", "min_days_between", "must not be negative")
    return AttachmentPolicy(
        version="sha256:" + hashlib.sha256(data).hexdigest(),
        name=policy["name"],
        sg_partners=frozenset(partners),
        max_cards_per_customer=policy["max_cards_per_customer"],
        one_card_per_partner=policy["one_card_per_partner"],
        allow_merge=policy["allow_merge"],
        initial_rule=initial["rule"],
        transfer_allowed=transfer["allowed"],
        transfer_min_days=transfer["min_days_between"],
        reattachment_rule=reattachment["rule"],
        source=text,
    )
