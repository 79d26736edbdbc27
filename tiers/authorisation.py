"""Who may do what: the role of each caller, checked by every core operation.

The command line acts as ``operator`` (everything: whoever runs it holds the database and the
master key anyway). API clients have one of four roles, and partner and hub clients are bound to
one domain; a domain they may not use is answered as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from errors import DomainHidden, Forbidden
from tiers.auditing import Access

__all__ = ["CLIENT_ROLES", "PERMISSIONS", "require"]

CLIENT_ROLES = ("partner", "hub", "auditor", "admin")

_AUDIT = frozenset(
    {
        "audit_read",
        "audit_verify",
        "audit_checkpoint",
        "audit_export",
        "audit_subject",
        "audit_proof",
        "audit_report",
        "audit_alerts",
    }
)
PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "partner": frozenset(
            {
                "pseudonymise",
                "tokenise_file",
                "job_read",
                "job_delete",
                "whoami",
                "card_enrol",
                "card_associate",
                "card_dissociate",
                "customer_transfer",
                "exchange_send",
                "customer_withdraw",
                "inbox_read",
                "inbox_ack",
            }
        ),
        "hub": frozenset({"whoami", "link_resolve", "campaign_send", "inbox_read", "inbox_ack"}),
        "auditor": _AUDIT | {"whoami"},
        "admin": frozenset(
            {
                "domain_add",
                "domain_list",
                "key_rotate",
                "key_list",
                "key_destroy",
                "client_add",
                "client_list",
                "client_revoke",
                "client_rotate_key",
                "client_request",
                "client_approve",
                "client_request_list",
                "whoami",
                "policy_check",
                "policy_diff",
            }
        ),
    }
)


def require(access: Access, action: str, domain: str | None = None) -> None:
    """Raise :class:`Forbidden` unless ``access`` may do ``action`` (in ``domain``).

    A partner or hub client naming another domain gets :class:`DomainHidden`, which the API
    answers exactly as an unknown domain.
    """
    if access.role == "operator":
        return
    allowed = PERMISSIONS.get(access.role, frozenset())
    if action not in allowed:
        raise Forbidden(f"the {access.role} role may not {action.replace('_', ' ')}")
    if domain is not None and access.domain is not None and domain != access.domain:
        raise DomainHidden(domain)
