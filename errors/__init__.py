"""The one exception tree of `tiers`: every error the service raises on purpose.

Every class carries a stable machine ``code`` (used by the CLI, the API and the audit
log) and a message that never contains a clear identifier or key material.

::

    TiersError                          (never raised itself)
    ├── InvalidIdentifier   (ValueError) an identifier that does not normalise
    ├── InvalidPseudonym    (ValueError) a string that is not a pseudonym
    ├── DomainMismatch                   a pseudonym of another domain
    ├── UnknownKeyVersion                a pseudonym of a version that never existed
    ├── KeyUnavailable                   the master key is missing or wrong, a key
    │   │                                record cannot be unwrapped
    │   └── KeyDestroyed                 the key version was crypto-shredded
    ├── KeyStateError                    a key operation the key's state forbids
    ├── NotFound                         an unknown domain, kind, client, job, ...
    ├── AlreadyExists                    creating something that exists
    ├── InvalidRequest      (ValueError) a malformed name, option or argument
    │   ├── PurposeRequired              an access to data that states no purpose
    │   ├── BodyTooLarge                 a request body over its limit (HTTP 413)
    │   ├── UploadTooSlow                an upload that stalls or trickles (HTTP 408)
    │   └── PolicyError                  a policy file that does not validate
    ├── InvalidFile         (ValueError) an input file that cannot be processed at all
    ├── NotInitialised                   the home or database has not been set up
    ├── DatabaseUnavailable              the database cannot be reached (retry later)
    ├── ConfigurationError               settings that are missing or unsafe
    ├── Unauthorised                     no valid credentials (one answer for every cause)
    │   └── RevokedKey                   a revoked client's own key (logged as that client)
    ├── Forbidden                        the caller's role may not do this
    │   ├── DomainHidden                 a domain the caller may not use (shown as not found)
    │   └── RowTampered                  a row of power changed outside the service
    ├── RateLimited                      too many requests from one client
    │   └── BudgetExhausted              too many identifiers from one client
    ├── PolicyViolation                  a request an attachment rule refuses
    ├── AuditIntegrityError              the access log failed verification
    └── AuditUnavailable                 the access log cannot be written (fail closed)
        ├── CheckpointStoreError         the checkpoint store outside the database fails
        └── LogInconsistent              the log contradicts a checkpoint signed before

This package is the bottom layer: it imports nothing of the project, and every other package
(``keys``, ``audit``, ``policy``, the core ``tiers``, ``api``) raises from it. The layers are
checked by the import contracts in ``pyproject.toml`` (``make lint``)::

    api, tiers.cli  ->  tiers (the core)  ->  tiers.storage  ->  keys, audit, policy  ->  errors
"""

from __future__ import annotations

__all__ = [
    "UNKNOWN_DOMAIN",
    "AlreadyExists",
    "AuditIntegrityError",
    "AuditUnavailable",
    "BodyTooLarge",
    "BudgetExhausted",
    "CheckpointStoreError",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DomainHidden",
    "DomainMismatch",
    "Forbidden",
    "InvalidFile",
    "InvalidIdentifier",
    "InvalidPseudonym",
    "InvalidRequest",
    "KeyDestroyed",
    "KeyStateError",
    "KeyUnavailable",
    "LogInconsistent",
    "NotFound",
    "NotInitialised",
    "PolicyError",
    "PolicyViolation",
    "PurposeRequired",
    "RateLimited",
    "RevokedKey",
    "RowTampered",
    "StateConflict",
    "TiersError",
    "Unauthorised",
    "UnknownKeyVersion",
    "UploadTooSlow",
]


# The message of an unknown domain, and of a domain the caller may not name there: the same
# words for every name, and never the name itself.
UNKNOWN_DOMAIN = "unknown domain"


class TiersError(Exception):
    """Root of every deliberate `tiers` error. ``status`` is the HTTP status the API answers
    it with (the command line exits 1); each code, its meaning and the class that carries it
    are listed in :mod:`errors.codes`."""

    code: str = "error"
    status: int = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class InvalidIdentifier(TiersError, ValueError):
    """An identifier that does not normalise. The message never echoes the value.

    Codes: ``empty``, ``bad_length``, ``bad_checksum``, ``bad_format``,
    ``bad_character``, ``bad_date``, ``unknown_kind``.
    """

    code = "bad_format"


class InvalidPseudonym(TiersError, ValueError):
    """A string that is not a well-formed pseudonym."""

    code = "bad_pseudonym"


class DomainMismatch(TiersError):
    """A pseudonym of one domain presented where another domain is expected."""

    code = "domain_mismatch"


class UnknownKeyVersion(TiersError):
    """A pseudonym or request naming a key version that does not exist."""

    code = "unknown_key_version"
    status = 404


class KeyUnavailable(TiersError):
    """Key material cannot be used: no master key, a wrong one, or a damaged record."""

    code = "key_unavailable"
    status = 503


class KeyDestroyed(KeyUnavailable):
    """The key version was destroyed: its pseudonyms are permanently unlinkable."""

    code = "key_destroyed"
    status = 410


class KeyStateError(TiersError):
    """A key operation that the key's current state forbids (e.g. destroying the active key)."""

    code = "key_state"
    status = 409


class NotFound(TiersError):
    """Something named in a request does not exist (or may not be seen by the caller)."""

    code = "not_found"
    status = 404


class AlreadyExists(TiersError):
    """Creating something that already exists."""

    code = "already_exists"
    status = 409


class StateConflict(TiersError):
    """Something whose current state forbids the operation (a file job still running, say)."""

    code = "state_conflict"
    status = 409


class InvalidRequest(TiersError, ValueError):
    """A malformed name, option or argument."""

    code = "invalid_request"


class PurposeRequired(InvalidRequest):
    """An access to data, links, deliveries, outputs or the log that states no purpose: refused
    (HTTP 400) and logged as ``denied``."""

    code = "purpose_required"

    def __init__(self, how: str) -> None:
        super().__init__(f"state a purpose ({how}): it is required for this access")


class BodyTooLarge(InvalidRequest):
    """A request body over its limit (``max_json_body_bytes``, ``max_upload_bytes``)."""

    code = "too_large"
    status = 413


class UploadTooSlow(InvalidRequest):
    """An upload that stalls, or trickles in below the minimum rate: the job fails, nothing is
    delivered, and the client sends it again."""

    code = "upload_too_slow"
    status = 408


class InvalidFile(TiersError, ValueError):
    """An input file that cannot be processed at all (not CSV, empty, bad header)."""

    code = "invalid_file"


class PolicyError(InvalidRequest):
    """A policy file (attachment rules, exchange schemas) that does not validate."""

    code = "bad_policy"


class NotInitialised(TiersError):
    """The home, database or base key has not been set up: run ``tiers init``."""

    code = "not_initialised"
    status = 503


class DatabaseUnavailable(TiersError):
    """The database cannot be reached or is busy: retry later (HTTP 503)."""

    code = "database_unavailable"
    status = 503


class ConfigurationError(TiersError):
    """Settings that are missing, malformed or unsafe for the environment."""

    code = "configuration"
    status = 503


class Unauthorised(TiersError):
    """Missing, malformed, unknown, revoked or wrong credentials: deliberately not said which."""

    code = "unauthorised"
    status = 401


class RevokedKey(Unauthorised):
    """A key that verifies, of a revoked client: answered like every other refusal of
    credentials, but logged under the client's name (``revoked_key``)."""

    def __init__(self, client: str) -> None:
        super().__init__("missing or invalid API key")
        self.client = client


class Forbidden(TiersError):
    """The caller is known but its role may not do this."""

    code = "forbidden"
    status = 403


class DomainHidden(Forbidden):
    """A domain the caller may not use. Logged as ``forbidden``; answered exactly like an
    unknown domain, so that clients cannot map the alliance."""

    status = 404

    def __init__(self, domain: str) -> None:
        super().__init__(UNKNOWN_DOMAIN)
        self.domain = domain


class RateLimited(TiersError):
    """The client sent more requests than its rate allows."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhausted(RateLimited):
    """The client's identifier budget is overdrawn: retry after ``retry_after`` seconds
    (``tiers.budgets``)."""

    code = "identifier_budget"


class PolicyViolation(TiersError):
    """A request that an attachment rule refuses; ``code`` is the rule's name."""

    code = "policy_violation"
    status = 409


class AuditIntegrityError(TiersError):
    """The access log or an exported bundle failed verification.

    ``seq`` is the sequence number of the first entry found bad, when one can be named.
    """

    code = "audit_integrity"
    status = 409

    def __init__(self, message: str, *, code: str | None = None, seq: int | None = None) -> None:
        super().__init__(message, code=code)
        self.seq = seq


class AuditUnavailable(TiersError):
    """The access log cannot be written: the operation it would describe is not carried out."""

    code = "audit_unavailable"
    status = 503


class CheckpointStoreError(AuditUnavailable):
    """The checkpoint store outside the database is missing, unreadable, unwritable or damaged:
    nothing is signed, and nothing that needs the log is done."""

    code = "checkpoint_store_unavailable"


class LogInconsistent(AuditUnavailable):
    """The database's log is not consistent with the last checkpoint signed outside it: the
    service refuses every write that needs the log until an operator recovers it."""

    code = "log_inconsistent"


class RowTampered(Forbidden):
    """A row that grants power (a client, a keyring) fails its seal: it was changed outside the
    service, and the service does not obey it (tiers.sealing)."""

    code = "row_tampered"
