"""Every error code, once: the code, the class that carries it (and so its HTTP status), and what
it means to the caller.

A code is a stable contract: the API's ``{"error": {"code"}}``, the command line's ``[code]``
and the access log's ``code`` all use it. A test scans the source for every code raised and
fails when one is missing here, when one listed here is raised by another class, or when one
listed here is raised nowhere; ``docs/errors.md`` is generated from this table
(``python -m errors.codes > docs/errors.md``) and a test keeps it current.

Codes of one row of a file or one value of a batch (an identifier that does not normalise, a
record with the wrong number of fields) are in :data:`ROW_CODES` when no exception carries
them. The attachment policy's evaluator (:mod:`policy`) names its own refusals by their rules
(``link.…``, ``unlink.…``, ``transfer.…``): those codes are carried by
:class:`PolicyViolation`, with its status, and a partner sees them only as
``association_refused`` when an association is refused.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from errors import (
    AlreadyExists,
    AuditIntegrityError,
    AuditUnavailable,
    BodyTooLarge,
    BudgetExhausted,
    CheckpointStoreError,
    ConfigurationError,
    DatabaseUnavailable,
    DomainMismatch,
    Forbidden,
    InvalidFile,
    InvalidIdentifier,
    InvalidPseudonym,
    InvalidRequest,
    KeyDestroyed,
    KeyStateError,
    KeyUnavailable,
    LogInconsistent,
    NotFound,
    NotInitialised,
    PolicyError,
    PolicyViolation,
    PurposeRequired,
    RateLimited,
    RevokedKey,
    RowTampered,
    StateConflict,
    TiersError,
    Unauthorised,
    UnknownKeyVersion,
    UploadTooSlow,
)

__all__ = ["CODES", "ROW_CODES", "client_module", "markdown"]


@dataclass(frozen=True, slots=True)
class Code:
    """One error code: the class that carries it and what it tells the caller."""

    code: str
    error: type[TiersError]
    meaning: str

    @property
    def status(self) -> int:
        return self.error.status


_IDENTIFIER = InvalidIdentifier
_REQUEST = InvalidRequest
_FILE = InvalidFile
_STORE = CheckpointStoreError

_TABLE = (
    # credentials, roles, limits
    Code("unauthorised", Unauthorised, "no valid API key: missing, malformed, unknown, revoked"),
    Code("revoked_key", RevokedKey, "logged only: a revoked client's key (answered unauthorised)"),
    Code("forbidden", Forbidden, "the caller's role may not do this"),
    Code("console_role", Forbidden, "the console is for auditors and admins, not this key"),
    Code("approval_required", Forbidden, "creating or re-keying a client needs a second admin"),
    Code("self_approval", Forbidden, "a request must be approved by another admin than its maker"),
    Code("blind_only", Forbidden, "the domain takes blinded identifiers only: no clear one"),
    Code("row_tampered", RowTampered, "a client or keyring row fails its seal: it is not obeyed"),
    Code("part_tampered", RowTampered, "a part relayed through the database was altered"),
    Code("rate_limited", RateLimited, "too many requests from this client: see Retry-After"),
    Code("identifier_budget", BudgetExhausted, "too many identifiers: see Retry-After"),
    Code("purpose_required", PurposeRequired, "state a purpose (X-Purpose, body, --purpose)"),
    Code("bad_purpose", _REQUEST, "the purpose is too long or holds control characters"),
    # requests
    Code("invalid_request", _REQUEST, "a malformed request: the message names the field"),
    Code("too_large", BodyTooLarge, "the request body is over its limit"),
    Code("upload_too_slow", UploadTooSlow, "the upload stalled or ran below the minimum rate"),
    Code("upload_abandoned", UploadTooSlow, "no part came for TIERS_UPLOAD_RESUME_SECONDS"),
    Code("upload_cut", _REQUEST, "the upload broke off before its end: send it again"),
    Code("part_too_large", BodyTooLarge, "a part over TIERS_UPLOAD_PART_MAX_BYTES"),
    Code("part_digest", _REQUEST, "a part does not match its Content-Digest"),
    Code("bad_content_type", _REQUEST, "an upload must be multipart/form-data"),
    Code("no_file", _REQUEST, "the upload holds no file part"),
    Code("one_file", _REQUEST, "the upload holds more than one file part"),
    Code("field_too_long", _REQUEST, "a form field of the upload is over its limit"),
    Code("too_many_values", _REQUEST, "more values in one call than the route takes"),
    Code("bad_name", _REQUEST, "a name (domain, client, witness) of the wrong form"),
    Code("bad_role", _REQUEST, "a role that does not exist"),
    Code("wrong_role", _REQUEST, "a domain or client of another role than the action needs"),
    Code("domain_required", _REQUEST, "this role's client or delivery needs a domain"),
    Code("no_domain_allowed", _REQUEST, "this role's client takes no domain"),
    Code("already_revoked", _REQUEST, "the client is revoked already"),
    Code("bad_period", _REQUEST, "a period that does not parse, or ends before it starts"),
    Code("bad_time", _REQUEST, "a time that does not parse (ISO 8601)"),
    Code("bad_filter", _REQUEST, "an audit filter that does not parse"),
    Code("bad_limit", _REQUEST, "a page's size out of range"),
    Code("bad_proof_request", _REQUEST, "a proof asked between sizes that do not fit the log"),
    Code("bad_key", _REQUEST, "a public key that does not parse"),
    Code("bad_retention", _REQUEST, "a retention period out of range"),
    Code("not_confirmed", _REQUEST, "a destructive command run without its confirmation flag"),
    Code("not_empty", _REQUEST, "restore into a new home or an empty database"),
    Code("backup_behind_store", _REQUEST, "the backup's log is behind the signed checkpoints"),
    Code("bad_column_spec", _REQUEST, "a --column is not NAME=KIND"),
    Code("no_columns", _REQUEST, "name at least one identifier column"),
    Code("column_named_twice", _REQUEST, "a column is named twice, or both identifier and kept"),
    Code("bad_delimiter", _REQUEST, "the delimiter must be one character, not a quote or newline"),
    Code("unknown_encoding", _REQUEST, "the encoding is not utf-8, cp1252 or latin-1"),
    Code("unknown_format", _REQUEST, "the format is not csv or parquet (Parquet: from a file)"),
    Code(
        "pseudonym_required", _REQUEST, "a card in a URL is named by its pseudonym, not its number"
    ),
    Code("same_file", _REQUEST, "the output would overwrite the input or the rejects"),
    Code("bad_policy", PolicyError, "the policy file does not validate: the message names the key"),
    # identifiers and pseudonyms
    Code("bad_format", _IDENTIFIER, "the identifier does not have its kind's form"),
    Code("bad_length", _IDENTIFIER, "the identifier has the wrong number of characters"),
    Code("bad_checksum", _IDENTIFIER, "the identifier's check digit is wrong"),
    Code("bad_character", _IDENTIFIER, "the identifier holds a character its kind does not allow"),
    Code("bad_date", _IDENTIFIER, "the date does not exist"),
    Code("empty", _IDENTIFIER, "the identifier is empty"),
    Code("too_long", _IDENTIFIER, "the value is longer than any identifier"),
    Code("unknown_kind", _IDENTIFIER, "no identifier kind by that name"),
    Code("bad_pseudonym", InvalidPseudonym, "the string is not a pseudonym"),
    Code("domain_mismatch", DomainMismatch, "a pseudonym of another domain than expected"),
    Code("unknown_key_version", UnknownKeyVersion, "a key version that never existed"),
    # files
    Code("invalid_file", _FILE, "the file cannot be processed at all"),
    Code("empty_file", _FILE, "the file is empty"),
    Code("no_rows", _FILE, "the file has a header but no data rows"),
    Code("not_csv", _FILE, "the file is not CSV"),
    Code("not_parquet", _FILE, "the file is not a Parquet file"),
    Code("header_lines", _FILE, "Spark: the header record spans several lines"),
    Code("several_files", _REQUEST, "Spark: the path names several files, not one"),
    Code("unknown_engine", _REQUEST, "the engine is neither local nor spark[:MASTER_URL]"),
    Code("bad_element", _REQUEST, "not a ristretto255 element, or the identity (blind mode)"),
    Code("no_elements", _REQUEST, "blind mode: a call with no element to evaluate"),
    Code(
        "bad_parquet",
        _FILE,
        "the Parquet file cannot be read to its end: the message names the line",
    ),
    Code(
        "not_utf8",
        _FILE,
        "the file does not decode as UTF-8 at its start: name its encoding (cp1252, latin-1)",
    ),
    Code("bad_csv", _FILE, "the file's CSV is broken (quoting)"),
    Code("unreadable", _FILE, "the file's header cannot be decoded"),
    Code("duplicate_column", _FILE, "the file's header names a column twice"),
    Code("no_identifier_column", _FILE, "the exchange file lacks its schema's identifier column"),
    Code("undeclared_column", _FILE, "the exchange file has a column its schema does not declare"),
    Code("bad_backup", _FILE, "the backup archive is damaged"),
    Code("bad_backup_seal", _FILE, "the backup was changed after it was made"),
    Code("unsealed_backup", _FILE, "the backup has no seal (restore --unsealed to accept it)"),
    # things named
    Code("not_found", NotFound, "nothing by that name"),
    Code("unknown_domain", NotFound, "no domain by that name that this client may use"),
    Code("unknown_client", NotFound, "no client by that name"),
    Code("unknown_card", NotFound, "no card by that number at this partner"),
    Code("unknown_column", NotFound, "the file has no column by that name"),
    Code("unknown_job", NotFound, "no file job by that id for this client"),
    Code("not_ready", NotFound, "the job's output is not ready yet"),
    Code("gone", NotFound, "the output or delivery was deleted (retention or purge)"),
    Code("unknown_delivery", NotFound, "no delivery by that id in this inbox"),
    Code("unknown_exchange", NotFound, "no exchange type by that name"),
    Code("unknown_key", NotFound, "no customer behind that linking key"),
    Code("unknown_pseudonym", NotFound, "no subject behind that pseudonym"),
    Code("no_hub_key", NotFound, "the customer has no hub linking key"),
    Code("unknown_request", NotFound, "no client request by that id"),
    Code("no_entry", NotFound, "no log entry at that number"),
    Code("no_checkpoint", NotFound, "no signed checkpoint (at that size) yet"),
    Code("no_such_file", NotFound, "the file named on the command line does not exist"),
    Code("no_such_folder", NotFound, "the folder an output is to be written in does not exist"),
    Code("already_exists", AlreadyExists, "it exists already"),
    Code("witness_exists", AlreadyExists, "the witness is initialised already"),
    # states
    Code("state_conflict", StateConflict, "the thing's state forbids this now"),
    Code("job_running", StateConflict, "the job is still running"),
    Code("too_many_jobs", StateConflict, "the client runs TIERS_MAX_RUNNING_JOBS jobs already"),
    Code("job_ended", StateConflict, "the job takes no more input: it is done or failed"),
    Code("keys_changed", StateConflict, "Spark: a key rotated during the job: run it again"),
    Code("staging_expired", StateConflict, "Spark: the job outlived its staged subjects (7 days)"),
    Code("job_complete", StateConflict, "the job has its whole file already"),
    Code("part_missing", StateConflict, "complete names another last part than was received"),
    Code("part_out_of_order", StateConflict, "parts go in order: the message names the next"),
    Code("part_conflict", StateConflict, "a part sent again with another content"),
    Code("request_pending", StateConflict, "a request for this client is pending already"),
    Code("request_decided", StateConflict, "the request was approved already"),
    Code("request_expired", StateConflict, "the request expired: make it again"),
    Code("key_state", KeyStateError, "the key's state forbids this operation"),
    Code("active_key", KeyStateError, "the active key version cannot be retired or destroyed"),
    Code("overlap_not_over", KeyStateError, "the rotated key's overlap window is not over"),
    Code("key_destroyed", KeyDestroyed, "the key version was destroyed: crypto-shredded"),
    # the rules
    Code("policy_violation", PolicyViolation, "an attachment rule refuses (the code names it)"),
    Code("association_refused", PolicyViolation, "the association is refused (the log has why)"),
    Code("unknown_other_card", PolicyViolation, "logged only: the other card is not enrolled"),
    Code("withdrawn", PolicyViolation, "the customer withdrew: nothing is sent about them"),
    Code("withdraw.not_sg", PolicyViolation, "only the managing partner withdraws a customer"),
    # the service
    Code("key_unavailable", KeyUnavailable, "a key cannot be used (master key, damaged record)"),
    Code("no_master_key", KeyUnavailable, "no master key is configured or found"),
    Code("bad_master_key", KeyUnavailable, "the master key is not 32 bytes of base64"),
    Code("wrong_master_key", KeyUnavailable, "the master key is not the database's"),
    Code("wrong_deployment", KeyUnavailable, "a Spark executor opened another deployment"),
    Code("master_key_permissions", KeyUnavailable, "the master key file is readable by others"),
    Code("hsm_unavailable", KeyUnavailable, "the HSM token is absent, busy or slow: retry"),
    Code("hsm_pin_incorrect", KeyUnavailable, "the HSM token refused the PIN (not retried)"),
    Code("hsm_locked", KeyUnavailable, "the HSM token is locked: too many wrong PINs"),
    Code("hsm_key_missing", KeyUnavailable, "the HSM token has no master key pair of that label"),
    Code("hsm_key_unsafe", KeyUnavailable, "the HSM key can be exported or is not one pair"),
    Code("not_initialised", NotInitialised, "run tiers init"),
    Code("no_policy", NotInitialised, "no attachment policy is applied yet"),
    Code("no_witness", NotInitialised, "the witness is not initialised"),
    Code("witness_state_damaged", NotInitialised, "the witness's own state is damaged"),
    Code("database_unavailable", DatabaseUnavailable, "the database cannot be reached: retry"),
    Code("configuration", ConfigurationError, "the settings are missing or unsafe"),
    Code("unknown_scheme", ConfigurationError, "tiers init --scheme takes hmac or oprf"),
    Code("scheme_fixed", ConfigurationError, "a deployment's scheme is chosen by its first init"),
    Code("job_process", ConfigurationError, "a file job's process did not start: see the log"),
    Code("spark_missing", ConfigurationError, "Spark is not installed: the spark extra"),
    Code("spark_failed", ConfigurationError, "the Spark job failed: Spark's log says why"),
    Code("executor_unavailable", ConfigurationError, "a Spark executor cannot use the database"),
    Code("master_key_exists", ConfigurationError, "a master key file exists there already"),
    Code("development_key_in_production", ConfigurationError, "the development key in prod"),
    Code("audit_domain_taken", ConfigurationError, "the audit domain's name is taken"),
    Code("bad_witnesses", ConfigurationError, "TIERS_WITNESSES does not parse"),
    Code("hsm_not_configured", ConfigurationError, "a TIERS_PKCS11_* setting is missing or bad"),
    Code("bad_option", ConfigurationError, "the command's options contradict one another"),
    Code("audit_unavailable", AuditUnavailable, "the log cannot be written: nothing was done"),
    Code("log_inconsistent", LogInconsistent, "the log contradicts a checkpoint signed before"),
    Code("checkpoint_store_unavailable", _STORE, "the checkpoint store fails"),
    Code("checkpoint_store_missing", _STORE, "the checkpoint store is missing"),
    Code("checkpoint_store_exists", _STORE, "a checkpoint store exists there already"),
    Code("checkpoint_store_damaged", _STORE, "the checkpoint store is damaged"),
    Code("checkpoint_store_unreadable", _STORE, "the checkpoint store cannot be read"),
    Code("checkpoint_store_unwritable", _STORE, "the checkpoint store cannot be written"),
    # the log's integrity
    Code("audit_integrity", AuditIntegrityError, "the log or an export fails verification"),
    Code("tampered", AuditIntegrityError, "an entry was changed, removed or reordered"),
    Code("malformed_entry", AuditIntegrityError, "an entry does not parse"),
    Code("malformed_bundle", AuditIntegrityError, "the export does not parse"),
    Code("malformed_checkpoint", AuditIntegrityError, "a checkpoint does not parse"),
    Code("malformed_note", AuditIntegrityError, "a signed note does not parse"),
    Code("bad_signature", AuditIntegrityError, "a checkpoint's signature does not verify"),
    Code("bad_cosignature", AuditIntegrityError, "a witness's cosignature does not verify"),
    Code("bad_proof", AuditIntegrityError, "an inclusion or consistency proof fails"),
    Code("unexpected_key", AuditIntegrityError, "signed by another key than the one given"),
    Code("unwitnessed", AuditIntegrityError, "the checkpoint lacks the witnesses' quorum"),
    Code("kept_without_checkpoint", AuditIntegrityError, "the kept export has no checkpoint"),
    # anything else
    Code("no_client", TiersError, "a file job over the API needs an API client"),
    Code("interrupted", TiersError, "logged only: the operation was interrupted"),
    Code("client_disconnected", TiersError, "logged only: the client went away mid-request"),
)

CODES: Mapping[str, Code] = MappingProxyType({entry.code: entry for entry in _TABLE})

# Codes of a file's row (its rejects file) that no exception carries; the identifier codes
# above are rows' codes too.
ROW_CODES: Mapping[str, str] = MappingProxyType(
    {
        "field_count": "the record has another number of fields than the header",
        "bad_encoding": "the cell is not valid UTF-8",
        # an exchange's payload value that does not fit its column's type (bad_date above)
        "bad_decimal": "not a decimal number (an exchange's column)",
        "bad_integer": "not an integer (an exchange's column)",
        "bad_store_code": "not a store code: capitals, digits, hyphens (an exchange's column)",
        "bad_category": "not a category: up to 32 of a-z, 0-9, - and _ (an exchange's column)",
        "bad_text": "text over 200 characters, or with control characters (an exchange's column)",
    }
)


def markdown() -> str:
    """The table as ``docs/errors.md``."""
    lines = [
        "# Error codes",
        "",
        "Generated from `errors/codes.py` by `python -m errors.codes > docs/errors.md`; a test",
        "keeps it current. Every error the service answers, prints or logs carries one of these",
        'codes: in the API\'s `{"error": {"code", "message"}}`, at the end of the command',
        "line's `error: message [code]`, and in the access log's `code`. Messages never echo the",
        "input: they name the field. The refusals of the attachment policy carry the rule's name",
        "(`link.…`, `unlink.…`, `transfer.…`) with the status of `policy_violation`; a refused",
        "association answers `association_refused` whatever the rule, and the log keeps the rule.",
        "",
        "| code | HTTP | class | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{c.code}` | {c.status} | `{c.error.__name__}` | {c.meaning} |" for c in _TABLE]
    lines += [
        "",
        "## Codes of rows",
        "",
        "A file's rejects file names each refused row's line, column and code; a batch answers",
        "each refused value's index and code. The identifier codes above, and:",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{code}` | {meaning} |" for code, meaning in ROW_CODES.items()]
    return "\n".join(lines) + "\n"


def _camel(code: str) -> str:
    name = "".join(part.capitalize() for part in code.replace(".", "_").split("_")) + "Error"
    return f"Tiers{name}" if hasattr(builtins, name) else name  # InterruptedError is Python's


def _classes() -> list[type[TiersError]]:
    """Every class that carries a code, with its bases up to TiersError, bases first."""
    found: list[type[TiersError]] = []
    for code in _TABLE:
        for cls in reversed(code.error.__mro__):
            if isinstance(cls, type) and issubclass(cls, TiersError) and cls not in found:
                found.append(cls)
    return found


_CLIENT_HEAD = (
    '"""Every error `tiers` answers, as an exception: generated from the server\'s table of',
    "codes (`python -m errors.codes --client > client/tiers_client/errors.py`); a test of the",
    "server keeps it current. Catch a class (`NotFound`, `RateLimited`) or one code",
    "(`UnknownDomainError`); :func:`error_for` makes the one an answer names.",
    '"""',
    "",
    "from __future__ import annotations",
    "",
    "",
    "class TiersError(Exception):",
    '    """An error answered by `tiers`: its ``code``, HTTP ``status`` and ``message``',
    "    (which never echoes a value sent), and the seconds to wait when it says",
    '    (``Retry-After``)."""',
    "",
    '    code = "error"',
)
_CLIENT_INIT = (
    "",
    "    def __init__(",
    "        self, message: str, *, code: str | None = None, status: int | None = None,",
    "        retry_after: float | None = None,",
    "    ) -> None:  # fmt: skip",
    "        super().__init__(message)",
    "        self.message = message",
    "        self.code = code or type(self).code",
    "        self.status = status or type(self).status",
    "        self.retry_after = retry_after",
    "",
    "    def __str__(self) -> str:",
    '        return f"{self.message} [{self.code}]"',
)
_CLIENT_TAIL = (
    "",
    "",
    "def error_for(status: int, code: str, message: str, retry_after: float | None = None) -> TiersError:",  # noqa: E501
    '    """The exception of an answer: its code\'s class, else its status\'s',
    '    (a policy rule\'s name, ``link.…``, is a :class:`PolicyViolation`)."""',
    "    cls = BY_CODE.get(code) or _BY_STATUS.get(status, TiersError)",
    "    return cls(message, code=code, status=status, retry_after=retry_after)",
    "",
)


def client_module() -> str:
    """``client/tiers_client/errors.py``: the server's classes and one class per code, for the
    client, which must not import the server (``python -m errors.codes --client``)."""
    lines = [*_CLIENT_HEAD, f"    status = {TiersError.status}", *_CLIENT_INIT]
    for cls in _classes()[1:]:
        base = next(b for b in cls.__mro__[1:] if issubclass(b, TiersError))
        lines += ["", "", f"class {cls.__name__}({base.__name__}):", f"    status = {cls.status}"]
    names = _client_codes(lines)
    lines += ["", "", "BY_CODE: dict[str, type[TiersError]] = {"]
    lines += [f'    "{code}": {name},' for code, name in names]
    lines += ["}", "_BY_STATUS: dict[int, type[TiersError]] = {"]
    lines += [f"    {cls.status}: {cls.__name__}," for cls in _status_classes()]
    lines += ["}", *_CLIENT_TAIL]
    return "\n".join(lines)


def _client_codes(lines: list[str]) -> list[tuple[str, str]]:
    """Adds to ``lines`` a class for each code, a subclass of the class that carries it (the
    class itself when the code is its own); returns each code's class name."""
    names = []
    classes = {cls.__name__ for cls in _classes()}
    for code in _TABLE:
        name = _camel(code.code)
        if name == code.error.__name__:  # the code of its own class: the class is its exception
            names.append((code.code, name))
            continue
        name = f"Tiers{name}" if name in classes else name
        names.append((code.code, name))
        meaning = code.meaning.replace('"', "'")
        lines += ["", "", f"class {name}({code.error.__name__}):"]
        lines += [f'    """{meaning}."""' if len(meaning) < 88 else f'    """{meaning[:84]}…"""']
        lines += ["", f'    code = "{code.code}"']
    return names


def _status_classes() -> list[type[TiersError]]:
    """For each status, the class an answer with a code the client does not know is given
    (a policy rule's name is a 409 of :class:`PolicyViolation`)."""
    general = (
        InvalidRequest, Unauthorised, Forbidden, NotFound, UploadTooSlow, PolicyViolation,
        KeyDestroyed, BodyTooLarge, RateLimited,
    )  # fmt: skip
    return sorted(general, key=lambda cls: cls.status)


if __name__ == "__main__":
    sys.stdout.write(client_module() if sys.argv[1:] == ["--client"] else markdown())
