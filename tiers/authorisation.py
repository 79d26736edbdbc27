"""Who may do what: the role of each caller, checked by every core operation.

The command line acts as ``operator`` (everything: whoever runs it holds the database and the
master key anyway). API clients have one of four roles, and partner and hub clients are bound to
one domain; a domain they may not use is answered as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from audit import Action
from errors import DomainHidden, Forbidden
from tiers.auditing import Access

__all__ = ["CLIENT_ROLES", "PERMISSIONS", "require"]

CLIENT_ROLES = ("partner", "hub", "auditor", "admin")

_AUDIT = frozenset(
    {
        Action.AUDIT_READ,
        Action.AUDIT_VERIFY,
        Action.AUDIT_CHECKPOINT,
        Action.AUDIT_EXPORT,
        Action.AUDIT_SUBJECT,
        Action.AUDIT_PROOF,
        Action.AUDIT_REPORT,
        Action.AUDIT_ALERTS,
    }
)
PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "partner": frozenset(
            {
                Action.PSEUDONYMISE,
                Action.TOKENISE_FILE,
                Action.JOB_READ,
                Action.JOB_DELETE,
                Action.WHOAMI,
                Action.CARD_ENROL,
                Action.CARD_ASSOCIATE,
                Action.CARD_DISSOCIATE,
                Action.CARD_SHOW,
                Action.CUSTOMER_TRANSFER,
                Action.EXCHANGE_SEND,
                Action.CUSTOMER_WITHDRAW,
                Action.INBOX_READ,
                Action.INBOX_ACK,
                Action.BLIND_EVALUATE,
                Action.BLIND_KEYS,
                Action.BLIND_TRANSLATE,
            }
        ),
        "hub": frozenset(
            {
                Action.WHOAMI,
                Action.LINK_RESOLVE,
                Action.CAMPAIGN_SEND,
                Action.INBOX_READ,
                Action.INBOX_ACK,
            }
        ),
        "auditor": _AUDIT | {Action.WHOAMI},
        "admin": frozenset(
            {
                Action.DOMAIN_ADD,
                Action.DOMAIN_LIST,
                Action.KEY_ROTATE,
                Action.KEY_LIST,
                Action.KEY_DESTROY,
                Action.CLIENT_ADD,
                Action.CLIENT_LIST,
                Action.CLIENT_REVOKE,
                Action.CLIENT_ROTATE_KEY,
                Action.CLIENT_REQUEST,
                Action.CLIENT_APPROVE,
                Action.CLIENT_REQUEST_LIST,
                Action.WHOAMI,
                Action.POLICY_CHECK,
                Action.POLICY_DIFF,
            }
        ),
    }
)


def require(access: Access, action: Action, domain: str | None = None) -> None:
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
