"""The log's vocabulary: every action an access-log entry can record, named once.

An entry's ``action`` is one of these values. The API's routes and the command line's commands
each declare the action they are logged as: renaming a route or a command does not change the
log. Values are stable: auditors filter and alert on them, and an old log keeps its names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audit.entry import AuditEntry

__all__ = [
    "CHANGE_EVENTS",
    "CLIENT_EVENTS",
    "Action",
    "identifiers",
]


class Action(StrEnum):
    """Every action the access log records (its value is what an entry holds)."""

    # partners: identifiers, files, cards, links, exchanges
    PSEUDONYMISE = "pseudonymise"
    TOKENISE_FILE = "tokenise_file"
    JOB_READ = "job_read"
    JOB_STATUS = "job_status"
    JOB_DOWNLOAD = "job_download"
    JOB_DELETE = "job_delete"
    JOB_PURGE = "job_purge"
    CARD_ENROL = "card_enrol"
    CARD_ASSOCIATE = "card_associate"
    CARD_DISSOCIATE = "card_dissociate"
    CARD_SHOW = "card_show"
    CUSTOMER_TRANSFER = "customer_transfer"
    CUSTOMER_WITHDRAW = "customer_withdraw"
    EXCHANGE_SEND = "exchange_send"
    # partners in blind mode: the domain's oblivious function, and its public keys
    BLIND_EVALUATE = "blind_evaluate"
    BLIND_KEYS = "blind_keys"
    BLIND_TRANSLATE = "blind_translate"
    # the hub
    LINK_RESOLVE = "link_resolve"
    CAMPAIGN_SEND = "campaign_send"
    # inboxes (partners and the hub)
    INBOX_READ = "inbox_read"
    INBOX_GET = "inbox_get"
    INBOX_ACK = "inbox_ack"
    INBOX_PURGE = "inbox_purge"
    # auditors
    AUDIT_READ = "audit_read"
    AUDIT_VERIFY = "audit_verify"
    AUDIT_VERIFY_AGAINST = "audit_verify_against"
    AUDIT_CHECKPOINT = "audit_checkpoint"
    AUDIT_CHECKPOINT_READ = "audit_checkpoint_read"
    AUDIT_CHECKPOINTS = "audit_checkpoints"
    AUDIT_LOG_KEY = "audit_log_key"
    AUDIT_EXPORT = "audit_export"
    AUDIT_SUBJECT = "audit_subject"
    AUDIT_PROOF = "audit_proof"
    AUDIT_REPORT = "audit_report"
    AUDIT_ALERTS = "audit_alerts"
    AUDIT_PURGE = "audit_purge"
    # admins and the operator
    INIT = "init"
    SERVE = "serve"
    CHECK = "check"
    DOMAIN_ADD = "domain_add"
    DOMAIN_LIST = "domain_list"
    KEY_ROTATE = "key_rotate"
    KEY_LIST = "key_list"
    KEY_DESTROY = "key_destroy"
    KEY_RETIRE = "key_retire"
    MASTER_KEY_ROTATE = "master_key_rotate"
    MASTER_KEY_STATUS = "master_key_status"
    CLIENT_ADD = "client_add"
    CLIENT_LIST = "client_list"
    CLIENT_REVOKE = "client_revoke"
    CLIENT_ROTATE_KEY = "client_rotate_key"
    CLIENT_REQUEST = "client_request"
    CLIENT_REQUEST_LIST = "client_request_list"
    CLIENT_APPROVE = "client_approve"
    POLICY_CHECK = "policy_check"
    POLICY_DIFF = "policy_diff"
    POLICY_APPLY = "policy_apply"
    BACKUP = "backup"
    RESTORE = "restore"
    # every client
    WHOAMI = "whoami"
    # auditors and admins in the console
    CONSOLE_SIGN_IN = "console_sign_in"
    CONSOLE_SIGN_OUT = "console_sign_out"
    # a request refused before its route was known
    REQUEST = "request"


# Changes to the keys and the master key (the access report's "key events").
KEY_EVENTS = frozenset(
    {
        Action.KEY_ROTATE,
        Action.KEY_RETIRE,
        Action.KEY_DESTROY,
        Action.INIT,
        Action.MASTER_KEY_ROTATE,
    }
)
# Who may hold keys: clients made, asked for, approved, re-keyed and revoked (each raises an
# alert of its own kind, and the report lists them).
CLIENT_EVENTS = frozenset(
    {
        Action.CLIENT_ADD,
        Action.CLIENT_REQUEST,
        Action.CLIENT_APPROVE,
        Action.CLIENT_ROTATE_KEY,
        Action.CLIENT_REVOKE,
    }
)
# Every change to what the service is: domains, keys, clients, the policy, a restored backup
# (the console's and the report's "changes").
CHANGE_EVENTS = (
    KEY_EVENTS | CLIENT_EVENTS | frozenset({Action.DOMAIN_ADD, Action.POLICY_APPLY, Action.RESTORE})
)

# Actions whose entries count their values in ``counts.in`` (or, for files and exchanges,
# ``detail["identifiers"]``), and those that take a fixed number of card numbers.
_COUNTED = frozenset(
    {
        Action.PSEUDONYMISE,
        Action.TOKENISE_FILE,
        Action.LINK_RESOLVE,
        Action.CARD_ENROL,
        Action.EXCHANGE_SEND,
        Action.BLIND_EVALUATE,
        Action.BLIND_TRANSLATE,
    }
)
_FIXED: dict[str, int] = {
    Action.CARD_ASSOCIATE: 2,
    Action.CARD_DISSOCIATE: 1,
    Action.CUSTOMER_TRANSFER: 1,
    Action.CUSTOMER_WITHDRAW: 1,
    Action.AUDIT_SUBJECT: 1,
}
# The actions that handle customers' identifiers (the alerts' volume, the report's counts).
IDENTIFIER_ACTIONS = _COUNTED | frozenset(_FIXED)


def identifiers(entry: AuditEntry) -> int:
    """The identifiers (or hub linking keys) an entry's call handled."""
    if entry.action in _FIXED:
        return _FIXED[entry.action]
    if entry.action not in _COUNTED:
        return 0
    given = entry.detail.get("identifiers")
    return given if isinstance(given, int) else entry.counts.records_in
