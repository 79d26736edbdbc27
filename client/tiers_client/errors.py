"""Every error `tiers` answers, as an exception: generated from the server's table of
codes (`python -m errors.codes --client > client/tiers_client/errors.py`); a test of the
server keeps it current. Catch a class (`NotFound`, `RateLimited`) or one code
(`UnknownDomainError`); :func:`error_for` makes the one an answer names.
"""

from __future__ import annotations


class TiersError(Exception):
    """An error answered by `tiers`: its ``code``, HTTP ``status`` and ``message``
    (which never echoes a value sent), and the seconds to wait when it says
    (``Retry-After``)."""

    code = "error"
    status = 400

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.status = status or type(self).status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class Unauthorised(TiersError):
    status = 401


class RevokedKey(Unauthorised):
    status = 401


class Forbidden(TiersError):
    status = 403


class RowTampered(Forbidden):
    status = 403


class RateLimited(TiersError):
    status = 429


class BudgetExhausted(RateLimited):
    status = 429


class InvalidRequest(TiersError):
    status = 400


class PurposeRequired(InvalidRequest):
    status = 400


class BodyTooLarge(InvalidRequest):
    status = 413


class UploadTooSlow(InvalidRequest):
    status = 408


class PolicyError(InvalidRequest):
    status = 400


class InvalidIdentifier(TiersError):
    status = 400


class InvalidPseudonym(TiersError):
    status = 400


class DomainMismatch(TiersError):
    status = 400


class UnknownKeyVersion(TiersError):
    status = 404


class InvalidFile(TiersError):
    status = 400


class NotFound(TiersError):
    status = 404


class AlreadyExists(TiersError):
    status = 409


class StateConflict(TiersError):
    status = 409


class KeyStateError(TiersError):
    status = 409


class KeyUnavailable(TiersError):
    status = 503


class KeyDestroyed(KeyUnavailable):
    status = 410


class PolicyViolation(TiersError):
    status = 409


class NotInitialised(TiersError):
    status = 503


class DatabaseUnavailable(TiersError):
    status = 503


class ConfigurationError(TiersError):
    status = 503


class AuditUnavailable(TiersError):
    status = 503


class LogInconsistent(AuditUnavailable):
    status = 503


class CheckpointStoreError(AuditUnavailable):
    status = 503


class AuditIntegrityError(TiersError):
    status = 409


class UnauthorisedError(Unauthorised):
    """no valid API key: missing, malformed, unknown, revoked."""

    code = "unauthorised"


class RevokedKeyError(RevokedKey):
    """logged only: a revoked client's key (answered unauthorised)."""

    code = "revoked_key"


class ForbiddenError(Forbidden):
    """the caller's role may not do this."""

    code = "forbidden"


class ConsoleRoleError(Forbidden):
    """the console is for auditors and admins, not this key."""

    code = "console_role"


class ApprovalRequiredError(Forbidden):
    """creating or re-keying a client needs a second admin."""

    code = "approval_required"


class SelfApprovalError(Forbidden):
    """a request must be approved by another admin than its maker."""

    code = "self_approval"


class BlindOnlyError(Forbidden):
    """the domain takes blinded identifiers only: no clear one."""

    code = "blind_only"


class RowTamperedError(RowTampered):
    """a client or keyring row fails its seal: it is not obeyed."""

    code = "row_tampered"


class PartTamperedError(RowTampered):
    """a part relayed through the database was altered."""

    code = "part_tampered"


class RateLimitedError(RateLimited):
    """too many requests from this client: see Retry-After."""

    code = "rate_limited"


class IdentifierBudgetError(BudgetExhausted):
    """too many identifiers: see Retry-After."""

    code = "identifier_budget"


class PurposeRequiredError(PurposeRequired):
    """state a purpose (X-Purpose, body, --purpose)."""

    code = "purpose_required"


class BadPurposeError(InvalidRequest):
    """the purpose is too long or holds control characters."""

    code = "bad_purpose"


class InvalidRequestError(InvalidRequest):
    """a malformed request: the message names the field."""

    code = "invalid_request"


class TooLargeError(BodyTooLarge):
    """the request body is over its limit."""

    code = "too_large"


class UploadTooSlowError(UploadTooSlow):
    """the upload stalled or ran below the minimum rate."""

    code = "upload_too_slow"


class UploadAbandonedError(UploadTooSlow):
    """no part came for TIERS_UPLOAD_RESUME_SECONDS."""

    code = "upload_abandoned"


class UploadCutError(InvalidRequest):
    """the upload broke off before its end: send it again."""

    code = "upload_cut"


class PartTooLargeError(BodyTooLarge):
    """a part over TIERS_UPLOAD_PART_MAX_BYTES."""

    code = "part_too_large"


class PartDigestError(InvalidRequest):
    """a part does not match its Content-Digest."""

    code = "part_digest"


class BadContentTypeError(InvalidRequest):
    """an upload must be multipart/form-data."""

    code = "bad_content_type"


class NoFileError(InvalidRequest):
    """the upload holds no file part."""

    code = "no_file"


class OneFileError(InvalidRequest):
    """the upload holds more than one file part."""

    code = "one_file"


class FieldTooLongError(InvalidRequest):
    """a form field of the upload is over its limit."""

    code = "field_too_long"


class TooManyValuesError(InvalidRequest):
    """more values in one call than the route takes."""

    code = "too_many_values"


class BadNameError(InvalidRequest):
    """a name (domain, client, witness) of the wrong form."""

    code = "bad_name"


class BadRoleError(InvalidRequest):
    """a role that does not exist."""

    code = "bad_role"


class WrongRoleError(InvalidRequest):
    """a domain or client of another role than the action needs."""

    code = "wrong_role"


class DomainRequiredError(InvalidRequest):
    """this role's client or delivery needs a domain."""

    code = "domain_required"


class NoDomainAllowedError(InvalidRequest):
    """this role's client takes no domain."""

    code = "no_domain_allowed"


class AlreadyRevokedError(InvalidRequest):
    """the client is revoked already."""

    code = "already_revoked"


class BadPeriodError(InvalidRequest):
    """a period that does not parse, or ends before it starts."""

    code = "bad_period"


class BadTimeError(InvalidRequest):
    """a time that does not parse (ISO 8601)."""

    code = "bad_time"


class BadFilterError(InvalidRequest):
    """an audit filter that does not parse."""

    code = "bad_filter"


class BadLimitError(InvalidRequest):
    """a page's size out of range."""

    code = "bad_limit"


class BadProofRequestError(InvalidRequest):
    """a proof asked between sizes that do not fit the log."""

    code = "bad_proof_request"


class BadKeyError(InvalidRequest):
    """a public key that does not parse."""

    code = "bad_key"


class BadRetentionError(InvalidRequest):
    """a retention period out of range."""

    code = "bad_retention"


class NotConfirmedError(InvalidRequest):
    """a destructive command run without its confirmation flag."""

    code = "not_confirmed"


class NotEmptyError(InvalidRequest):
    """restore into a new home or an empty database."""

    code = "not_empty"


class BackupBehindStoreError(InvalidRequest):
    """the backup's log is behind the signed checkpoints."""

    code = "backup_behind_store"


class BadColumnSpecError(InvalidRequest):
    """a --column is not NAME=KIND."""

    code = "bad_column_spec"


class NoColumnsError(InvalidRequest):
    """name at least one identifier column."""

    code = "no_columns"


class ColumnNamedTwiceError(InvalidRequest):
    """a column is named twice, or both identifier and kept."""

    code = "column_named_twice"


class BadDelimiterError(InvalidRequest):
    """the delimiter must be one character, not a quote or newline."""

    code = "bad_delimiter"


class UnknownEncodingError(InvalidRequest):
    """the encoding is not utf-8, cp1252 or latin-1."""

    code = "unknown_encoding"


class UnknownFormatError(InvalidRequest):
    """the format is not csv or parquet (Parquet: from a file)."""

    code = "unknown_format"


class PseudonymRequiredError(InvalidRequest):
    """a card in a URL is named by its pseudonym, not its number."""

    code = "pseudonym_required"


class SameFileError(InvalidRequest):
    """the output would overwrite the input or the rejects."""

    code = "same_file"


class BadPolicyError(PolicyError):
    """the policy file does not validate: the message names the key."""

    code = "bad_policy"


class BadFormatError(InvalidIdentifier):
    """the identifier does not have its kind's form."""

    code = "bad_format"


class BadLengthError(InvalidIdentifier):
    """the identifier has the wrong number of characters."""

    code = "bad_length"


class BadChecksumError(InvalidIdentifier):
    """the identifier's check digit is wrong."""

    code = "bad_checksum"


class BadCharacterError(InvalidIdentifier):
    """the identifier holds a character its kind does not allow."""

    code = "bad_character"


class BadDateError(InvalidIdentifier):
    """the date does not exist."""

    code = "bad_date"


class EmptyError(InvalidIdentifier):
    """the identifier is empty."""

    code = "empty"


class TooLongError(InvalidIdentifier):
    """the value is longer than any identifier."""

    code = "too_long"


class UnknownKindError(InvalidIdentifier):
    """no identifier kind by that name."""

    code = "unknown_kind"


class BadPseudonymError(InvalidPseudonym):
    """the string is not a pseudonym."""

    code = "bad_pseudonym"


class DomainMismatchError(DomainMismatch):
    """a pseudonym of another domain than expected."""

    code = "domain_mismatch"


class UnknownKeyVersionError(UnknownKeyVersion):
    """a key version that never existed."""

    code = "unknown_key_version"


class InvalidFileError(InvalidFile):
    """the file cannot be processed at all."""

    code = "invalid_file"


class EmptyFileError(InvalidFile):
    """the file is empty."""

    code = "empty_file"


class NoRowsError(InvalidFile):
    """the file has a header but no data rows."""

    code = "no_rows"


class NotCsvError(InvalidFile):
    """the file is not CSV."""

    code = "not_csv"


class NotParquetError(InvalidFile):
    """the file is not a Parquet file."""

    code = "not_parquet"


class HeaderLinesError(InvalidFile):
    """Spark: the header record spans several lines."""

    code = "header_lines"


class SeveralFilesError(InvalidRequest):
    """Spark: the path names several files, not one."""

    code = "several_files"


class UnknownEngineError(InvalidRequest):
    """the engine is neither local nor spark[:MASTER_URL]."""

    code = "unknown_engine"


class BadElementError(InvalidRequest):
    """not a ristretto255 element, or the identity (blind mode)."""

    code = "bad_element"


class NoElementsError(InvalidRequest):
    """blind mode: a call with no element to evaluate."""

    code = "no_elements"


class BadParquetError(InvalidFile):
    """the Parquet file cannot be read to its end: the message names the line."""

    code = "bad_parquet"


class NotUtf8Error(InvalidFile):
    """the file does not decode as UTF-8 at its start: name its encoding (cp1252, latin-1)."""

    code = "not_utf8"


class BadCsvError(InvalidFile):
    """the file's CSV is broken (quoting)."""

    code = "bad_csv"


class UnreadableError(InvalidFile):
    """the file's header cannot be decoded."""

    code = "unreadable"


class DuplicateColumnError(InvalidFile):
    """the file's header names a column twice."""

    code = "duplicate_column"


class NoIdentifierColumnError(InvalidFile):
    """the exchange file lacks its schema's identifier column."""

    code = "no_identifier_column"


class UndeclaredColumnError(InvalidFile):
    """the exchange file has a column its schema does not declare."""

    code = "undeclared_column"


class BadBackupError(InvalidFile):
    """the backup archive is damaged."""

    code = "bad_backup"


class BadBackupSealError(InvalidFile):
    """the backup was changed after it was made."""

    code = "bad_backup_seal"


class UnsealedBackupError(InvalidFile):
    """the backup has no seal (restore --unsealed to accept it)."""

    code = "unsealed_backup"


class NotFoundError(NotFound):
    """nothing by that name."""

    code = "not_found"


class UnknownDomainError(NotFound):
    """no domain by that name that this client may use."""

    code = "unknown_domain"


class UnknownClientError(NotFound):
    """no client by that name."""

    code = "unknown_client"


class UnknownCardError(NotFound):
    """no card by that number at this partner."""

    code = "unknown_card"


class UnknownColumnError(NotFound):
    """the file has no column by that name."""

    code = "unknown_column"


class UnknownJobError(NotFound):
    """no file job by that id for this client."""

    code = "unknown_job"


class NotReadyError(NotFound):
    """the job's output is not ready yet."""

    code = "not_ready"


class GoneError(NotFound):
    """the output or delivery was deleted (retention or purge)."""

    code = "gone"


class UnknownDeliveryError(NotFound):
    """no delivery by that id in this inbox."""

    code = "unknown_delivery"


class UnknownExchangeError(NotFound):
    """no exchange type by that name."""

    code = "unknown_exchange"


class UnknownKeyError(NotFound):
    """no customer behind that linking key."""

    code = "unknown_key"


class UnknownPseudonymError(NotFound):
    """no subject behind that pseudonym."""

    code = "unknown_pseudonym"


class NoHubKeyError(NotFound):
    """the customer has no hub linking key."""

    code = "no_hub_key"


class UnknownRequestError(NotFound):
    """no client request by that id."""

    code = "unknown_request"


class NoEntryError(NotFound):
    """no log entry at that number."""

    code = "no_entry"


class NoCheckpointError(NotFound):
    """no signed checkpoint (at that size) yet."""

    code = "no_checkpoint"


class NoSuchFileError(NotFound):
    """the file named on the command line does not exist."""

    code = "no_such_file"


class NoSuchFolderError(NotFound):
    """the folder an output is to be written in does not exist."""

    code = "no_such_folder"


class AlreadyExistsError(AlreadyExists):
    """it exists already."""

    code = "already_exists"


class WitnessExistsError(AlreadyExists):
    """the witness is initialised already."""

    code = "witness_exists"


class StateConflictError(StateConflict):
    """the thing's state forbids this now."""

    code = "state_conflict"


class JobRunningError(StateConflict):
    """the job is still running."""

    code = "job_running"


class TooManyJobsError(StateConflict):
    """the client runs TIERS_MAX_RUNNING_JOBS jobs already."""

    code = "too_many_jobs"


class JobEndedError(StateConflict):
    """the job takes no more input: it is done or failed."""

    code = "job_ended"


class KeysChangedError(StateConflict):
    """Spark: a key rotated during the job: run it again."""

    code = "keys_changed"


class StagingExpiredError(StateConflict):
    """Spark: the job outlived its staged subjects (7 days)."""

    code = "staging_expired"


class JobCompleteError(StateConflict):
    """the job has its whole file already."""

    code = "job_complete"


class PartMissingError(StateConflict):
    """complete names another last part than was received."""

    code = "part_missing"


class PartOutOfOrderError(StateConflict):
    """parts go in order: the message names the next."""

    code = "part_out_of_order"


class PartConflictError(StateConflict):
    """a part sent again with another content."""

    code = "part_conflict"


class RequestPendingError(StateConflict):
    """a request for this client is pending already."""

    code = "request_pending"


class RequestDecidedError(StateConflict):
    """the request was approved already."""

    code = "request_decided"


class RequestExpiredError(StateConflict):
    """the request expired: make it again."""

    code = "request_expired"


class ActiveKeyError(KeyStateError):
    """the active key version cannot be retired or destroyed."""

    code = "active_key"


class OverlapNotOverError(KeyStateError):
    """the rotated key's overlap window is not over."""

    code = "overlap_not_over"


class KeyDestroyedError(KeyDestroyed):
    """the key version was destroyed: crypto-shredded."""

    code = "key_destroyed"


class PolicyViolationError(PolicyViolation):
    """an attachment rule refuses (the code names it)."""

    code = "policy_violation"


class AssociationRefusedError(PolicyViolation):
    """the association is refused (the log has why)."""

    code = "association_refused"


class UnknownOtherCardError(PolicyViolation):
    """logged only: the other card is not enrolled."""

    code = "unknown_other_card"


class WithdrawnError(PolicyViolation):
    """the customer withdrew: nothing is sent about them."""

    code = "withdrawn"


class WithdrawNotSgError(PolicyViolation):
    """only the managing partner withdraws a customer."""

    code = "withdraw.not_sg"


class KeyUnavailableError(KeyUnavailable):
    """a key cannot be used (master key, damaged record)."""

    code = "key_unavailable"


class NoMasterKeyError(KeyUnavailable):
    """no master key is configured or found."""

    code = "no_master_key"


class BadMasterKeyError(KeyUnavailable):
    """the master key is not 32 bytes of base64."""

    code = "bad_master_key"


class WrongMasterKeyError(KeyUnavailable):
    """the master key is not the database's."""

    code = "wrong_master_key"


class WrongDeploymentError(KeyUnavailable):
    """a Spark executor opened another deployment."""

    code = "wrong_deployment"


class MasterKeyPermissionsError(KeyUnavailable):
    """the master key file is readable by others."""

    code = "master_key_permissions"


class HsmUnavailableError(KeyUnavailable):
    """the HSM token is absent, busy or slow: retry."""

    code = "hsm_unavailable"


class HsmPinIncorrectError(KeyUnavailable):
    """the HSM token refused the PIN (not retried)."""

    code = "hsm_pin_incorrect"


class HsmLockedError(KeyUnavailable):
    """the HSM token is locked: too many wrong PINs."""

    code = "hsm_locked"


class HsmKeyMissingError(KeyUnavailable):
    """the HSM token has no master key pair of that label."""

    code = "hsm_key_missing"


class HsmKeyUnsafeError(KeyUnavailable):
    """the HSM key can be exported or is not one pair."""

    code = "hsm_key_unsafe"


class NotInitialisedError(NotInitialised):
    """run tiers init."""

    code = "not_initialised"


class NoPolicyError(NotInitialised):
    """no attachment policy is applied yet."""

    code = "no_policy"


class NoWitnessError(NotInitialised):
    """the witness is not initialised."""

    code = "no_witness"


class WitnessStateDamagedError(NotInitialised):
    """the witness's own state is damaged."""

    code = "witness_state_damaged"


class DatabaseUnavailableError(DatabaseUnavailable):
    """the database cannot be reached: retry."""

    code = "database_unavailable"


class UnknownSchemeError(ConfigurationError):
    """tiers init --scheme takes hmac or oprf."""

    code = "unknown_scheme"


class SchemeFixedError(ConfigurationError):
    """a deployment's scheme is chosen by its first init."""

    code = "scheme_fixed"


class JobProcessError(ConfigurationError):
    """a file job's process did not start: see the log."""

    code = "job_process"


class SparkMissingError(ConfigurationError):
    """Spark is not installed: the spark extra."""

    code = "spark_missing"


class SparkFailedError(ConfigurationError):
    """the Spark job failed: Spark's log says why."""

    code = "spark_failed"


class ExecutorUnavailableError(ConfigurationError):
    """a Spark executor cannot use the database."""

    code = "executor_unavailable"


class MasterKeyExistsError(ConfigurationError):
    """a master key file exists there already."""

    code = "master_key_exists"


class DevelopmentKeyInProductionError(ConfigurationError):
    """the development key in prod."""

    code = "development_key_in_production"


class AuditDomainTakenError(ConfigurationError):
    """the audit domain's name is taken."""

    code = "audit_domain_taken"


class BadWitnessesError(ConfigurationError):
    """TIERS_WITNESSES does not parse."""

    code = "bad_witnesses"


class HsmNotConfiguredError(ConfigurationError):
    """a TIERS_PKCS11_* setting is missing or bad."""

    code = "hsm_not_configured"


class BadOptionError(ConfigurationError):
    """the command's options contradict one another."""

    code = "bad_option"


class AuditUnavailableError(AuditUnavailable):
    """the log cannot be written: nothing was done."""

    code = "audit_unavailable"


class LogInconsistentError(LogInconsistent):
    """the log contradicts a checkpoint signed before."""

    code = "log_inconsistent"


class CheckpointStoreUnavailableError(CheckpointStoreError):
    """the checkpoint store fails."""

    code = "checkpoint_store_unavailable"


class CheckpointStoreMissingError(CheckpointStoreError):
    """the checkpoint store is missing."""

    code = "checkpoint_store_missing"


class CheckpointStoreExistsError(CheckpointStoreError):
    """a checkpoint store exists there already."""

    code = "checkpoint_store_exists"


class CheckpointStoreDamagedError(CheckpointStoreError):
    """the checkpoint store is damaged."""

    code = "checkpoint_store_damaged"


class CheckpointStoreUnreadableError(CheckpointStoreError):
    """the checkpoint store cannot be read."""

    code = "checkpoint_store_unreadable"


class CheckpointStoreUnwritableError(CheckpointStoreError):
    """the checkpoint store cannot be written."""

    code = "checkpoint_store_unwritable"


class TamperedError(AuditIntegrityError):
    """an entry was changed, removed or reordered."""

    code = "tampered"


class MalformedEntryError(AuditIntegrityError):
    """an entry does not parse."""

    code = "malformed_entry"


class MalformedBundleError(AuditIntegrityError):
    """the export does not parse."""

    code = "malformed_bundle"


class MalformedCheckpointError(AuditIntegrityError):
    """a checkpoint does not parse."""

    code = "malformed_checkpoint"


class MalformedNoteError(AuditIntegrityError):
    """a signed note does not parse."""

    code = "malformed_note"


class BadSignatureError(AuditIntegrityError):
    """a checkpoint's signature does not verify."""

    code = "bad_signature"


class BadCosignatureError(AuditIntegrityError):
    """a witness's cosignature does not verify."""

    code = "bad_cosignature"


class BadProofError(AuditIntegrityError):
    """an inclusion or consistency proof fails."""

    code = "bad_proof"


class UnexpectedKeyError(AuditIntegrityError):
    """signed by another key than the one given."""

    code = "unexpected_key"


class UnwitnessedError(AuditIntegrityError):
    """the checkpoint lacks the witnesses' quorum."""

    code = "unwitnessed"


class KeptWithoutCheckpointError(AuditIntegrityError):
    """the kept export has no checkpoint."""

    code = "kept_without_checkpoint"


class NoClientError(TiersError):
    """a file job over the API needs an API client."""

    code = "no_client"


class TiersInterruptedError(TiersError):
    """logged only: the operation was interrupted."""

    code = "interrupted"


class ClientDisconnectedError(TiersError):
    """logged only: the client went away mid-request."""

    code = "client_disconnected"


BY_CODE: dict[str, type[TiersError]] = {
    "unauthorised": UnauthorisedError,
    "revoked_key": RevokedKeyError,
    "forbidden": ForbiddenError,
    "console_role": ConsoleRoleError,
    "approval_required": ApprovalRequiredError,
    "self_approval": SelfApprovalError,
    "blind_only": BlindOnlyError,
    "row_tampered": RowTamperedError,
    "part_tampered": PartTamperedError,
    "rate_limited": RateLimitedError,
    "identifier_budget": IdentifierBudgetError,
    "purpose_required": PurposeRequiredError,
    "bad_purpose": BadPurposeError,
    "invalid_request": InvalidRequestError,
    "too_large": TooLargeError,
    "upload_too_slow": UploadTooSlowError,
    "upload_abandoned": UploadAbandonedError,
    "upload_cut": UploadCutError,
    "part_too_large": PartTooLargeError,
    "part_digest": PartDigestError,
    "bad_content_type": BadContentTypeError,
    "no_file": NoFileError,
    "one_file": OneFileError,
    "field_too_long": FieldTooLongError,
    "too_many_values": TooManyValuesError,
    "bad_name": BadNameError,
    "bad_role": BadRoleError,
    "wrong_role": WrongRoleError,
    "domain_required": DomainRequiredError,
    "no_domain_allowed": NoDomainAllowedError,
    "already_revoked": AlreadyRevokedError,
    "bad_period": BadPeriodError,
    "bad_time": BadTimeError,
    "bad_filter": BadFilterError,
    "bad_limit": BadLimitError,
    "bad_proof_request": BadProofRequestError,
    "bad_key": BadKeyError,
    "bad_retention": BadRetentionError,
    "not_confirmed": NotConfirmedError,
    "not_empty": NotEmptyError,
    "backup_behind_store": BackupBehindStoreError,
    "bad_column_spec": BadColumnSpecError,
    "no_columns": NoColumnsError,
    "column_named_twice": ColumnNamedTwiceError,
    "bad_delimiter": BadDelimiterError,
    "unknown_encoding": UnknownEncodingError,
    "unknown_format": UnknownFormatError,
    "pseudonym_required": PseudonymRequiredError,
    "same_file": SameFileError,
    "bad_policy": BadPolicyError,
    "bad_format": BadFormatError,
    "bad_length": BadLengthError,
    "bad_checksum": BadChecksumError,
    "bad_character": BadCharacterError,
    "bad_date": BadDateError,
    "empty": EmptyError,
    "too_long": TooLongError,
    "unknown_kind": UnknownKindError,
    "bad_pseudonym": BadPseudonymError,
    "domain_mismatch": DomainMismatchError,
    "unknown_key_version": UnknownKeyVersionError,
    "invalid_file": InvalidFileError,
    "empty_file": EmptyFileError,
    "no_rows": NoRowsError,
    "not_csv": NotCsvError,
    "not_parquet": NotParquetError,
    "header_lines": HeaderLinesError,
    "several_files": SeveralFilesError,
    "unknown_engine": UnknownEngineError,
    "bad_element": BadElementError,
    "no_elements": NoElementsError,
    "bad_parquet": BadParquetError,
    "not_utf8": NotUtf8Error,
    "bad_csv": BadCsvError,
    "unreadable": UnreadableError,
    "duplicate_column": DuplicateColumnError,
    "no_identifier_column": NoIdentifierColumnError,
    "undeclared_column": UndeclaredColumnError,
    "bad_backup": BadBackupError,
    "bad_backup_seal": BadBackupSealError,
    "unsealed_backup": UnsealedBackupError,
    "not_found": NotFoundError,
    "unknown_domain": UnknownDomainError,
    "unknown_client": UnknownClientError,
    "unknown_card": UnknownCardError,
    "unknown_column": UnknownColumnError,
    "unknown_job": UnknownJobError,
    "not_ready": NotReadyError,
    "gone": GoneError,
    "unknown_delivery": UnknownDeliveryError,
    "unknown_exchange": UnknownExchangeError,
    "unknown_key": UnknownKeyError,
    "unknown_pseudonym": UnknownPseudonymError,
    "no_hub_key": NoHubKeyError,
    "unknown_request": UnknownRequestError,
    "no_entry": NoEntryError,
    "no_checkpoint": NoCheckpointError,
    "no_such_file": NoSuchFileError,
    "no_such_folder": NoSuchFolderError,
    "already_exists": AlreadyExistsError,
    "witness_exists": WitnessExistsError,
    "state_conflict": StateConflictError,
    "job_running": JobRunningError,
    "too_many_jobs": TooManyJobsError,
    "job_ended": JobEndedError,
    "keys_changed": KeysChangedError,
    "staging_expired": StagingExpiredError,
    "job_complete": JobCompleteError,
    "part_missing": PartMissingError,
    "part_out_of_order": PartOutOfOrderError,
    "part_conflict": PartConflictError,
    "request_pending": RequestPendingError,
    "request_decided": RequestDecidedError,
    "request_expired": RequestExpiredError,
    "key_state": KeyStateError,
    "active_key": ActiveKeyError,
    "overlap_not_over": OverlapNotOverError,
    "key_destroyed": KeyDestroyedError,
    "policy_violation": PolicyViolationError,
    "association_refused": AssociationRefusedError,
    "unknown_other_card": UnknownOtherCardError,
    "withdrawn": WithdrawnError,
    "withdraw.not_sg": WithdrawNotSgError,
    "key_unavailable": KeyUnavailableError,
    "no_master_key": NoMasterKeyError,
    "bad_master_key": BadMasterKeyError,
    "wrong_master_key": WrongMasterKeyError,
    "wrong_deployment": WrongDeploymentError,
    "master_key_permissions": MasterKeyPermissionsError,
    "hsm_unavailable": HsmUnavailableError,
    "hsm_pin_incorrect": HsmPinIncorrectError,
    "hsm_locked": HsmLockedError,
    "hsm_key_missing": HsmKeyMissingError,
    "hsm_key_unsafe": HsmKeyUnsafeError,
    "not_initialised": NotInitialisedError,
    "no_policy": NoPolicyError,
    "no_witness": NoWitnessError,
    "witness_state_damaged": WitnessStateDamagedError,
    "database_unavailable": DatabaseUnavailableError,
    "configuration": ConfigurationError,
    "unknown_scheme": UnknownSchemeError,
    "scheme_fixed": SchemeFixedError,
    "job_process": JobProcessError,
    "spark_missing": SparkMissingError,
    "spark_failed": SparkFailedError,
    "executor_unavailable": ExecutorUnavailableError,
    "master_key_exists": MasterKeyExistsError,
    "development_key_in_production": DevelopmentKeyInProductionError,
    "audit_domain_taken": AuditDomainTakenError,
    "bad_witnesses": BadWitnessesError,
    "hsm_not_configured": HsmNotConfiguredError,
    "bad_option": BadOptionError,
    "audit_unavailable": AuditUnavailableError,
    "log_inconsistent": LogInconsistentError,
    "checkpoint_store_unavailable": CheckpointStoreUnavailableError,
    "checkpoint_store_missing": CheckpointStoreMissingError,
    "checkpoint_store_exists": CheckpointStoreExistsError,
    "checkpoint_store_damaged": CheckpointStoreDamagedError,
    "checkpoint_store_unreadable": CheckpointStoreUnreadableError,
    "checkpoint_store_unwritable": CheckpointStoreUnwritableError,
    "audit_integrity": AuditIntegrityError,
    "tampered": TamperedError,
    "malformed_entry": MalformedEntryError,
    "malformed_bundle": MalformedBundleError,
    "malformed_checkpoint": MalformedCheckpointError,
    "malformed_note": MalformedNoteError,
    "bad_signature": BadSignatureError,
    "bad_cosignature": BadCosignatureError,
    "bad_proof": BadProofError,
    "unexpected_key": UnexpectedKeyError,
    "unwitnessed": UnwitnessedError,
    "kept_without_checkpoint": KeptWithoutCheckpointError,
    "no_client": NoClientError,
    "interrupted": TiersInterruptedError,
    "client_disconnected": ClientDisconnectedError,
}
_BY_STATUS: dict[int, type[TiersError]] = {
    400: InvalidRequest,
    401: Unauthorised,
    403: Forbidden,
    404: NotFound,
    408: UploadTooSlow,
    409: PolicyViolation,
    410: KeyDestroyed,
    413: BodyTooLarge,
    429: RateLimited,
}


def error_for(status: int, code: str, message: str, retry_after: float | None = None) -> TiersError:
    """The exception of an answer: its code's class, else its status's
    (a policy rule's name, ``link.…``, is a :class:`PolicyViolation`)."""
    cls = BY_CODE.get(code) or _BY_STATUS.get(status, TiersError)
    return cls(message, code=code, status=status, retry_after=retry_after)
