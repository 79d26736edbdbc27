"""The master key in a PKCS#11 token (a hardware security module): used there, never exported.

In a token, the master key is a pair of objects sharing one label and one random id: an AES-256
key that wraps and unwraps domain keys (``CKM_AES_GCM``, the same record format and associated
data as a key held in memory, see :mod:`keys.wrapping`), and a 256-bit generic secret for
HMAC-SHA-256 (``CKM_SHA256_HMAC``: the check value, derived secrets and the seals of rows of
power). Both are generated inside the token, sensitive and not extractable; :meth:`open`
refuses a pair that is not. Unwrapped domain keys live in this process's memory, as with a key
from a file: the token protects the key that protects them.

This process keeps one logged-in session per token, used under a lock by one thread at a
time (an operation takes some tens of microseconds). Faults become
:class:`~errors.KeyUnavailable` (503) with a stable code:

- ``hsm_unavailable``: the token is absent, removed, out of sessions, or the lock was not free
  within the configured timeout (a token answering slowly). The session is dropped, and the
  next operation, at most every :data:`RETRY_SECONDS`, loads the library again and logs in:
  the service recovers on its own when the token is back.
- ``hsm_pin_incorrect`` and ``hsm_locked``: the PIN is refused. It is never tried again by this
  process (each try would bring a real token nearer to locking itself); refusals are counted
  (:func:`pin_refusals`) and the process must be restarted with the right PIN.
- ``hsm_key_missing`` and ``hsm_key_unsafe``: no such key pair, or one that can be exported.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from cryptography.exceptions import InvalidTag
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from errors import ConfigurationError, KeyUnavailable
from keys._encoding import length_prefixed
from keys._secret import Secret
from keys.master import CHECK_LABEL, KeyEncryptionKey, refuse_shared
from keys.master import Attribute as Described

__all__ = ["Pkcs11Config", "Pkcs11MasterKey", "pin_refusals", "read_pin"]

RETRY_SECONDS = 0.25
KEY_BITS = 256
_ID_BYTES = 16
_T = TypeVar("_T")

# Faults of the token or of the session: drop the session, load the library again later.
_GONE = (
    p11.DeviceError,
    p11.DeviceMemory,
    p11.DeviceRemoved,
    p11.GeneralError,
    p11.KeyHandleInvalid,
    p11.NoSuchToken,
    p11.ObjectHandleInvalid,
    p11.SessionClosed,
    p11.SessionCount,
    p11.SessionHandleInvalid,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
)
# What a token answers to a GCM tag that does not verify (SoftHSM2: a general error).
_BAD_DATA = (p11.EncryptedDataInvalid, p11.EncryptedDataLenRange, p11.FunctionFailed)
_PROBE = b"tiers token probe"

_refusals = 0
_refusals_lock = threading.Lock()


def pin_refusals() -> int:
    """How many times this process's PIN was refused by a token (the service's metrics)."""
    return _refusals


def read_pin(path: Path) -> Secret:
    """The PIN in ``path`` (its first line). Refuses a file readable by group or others, like
    the master key file; the PIN is never echoed."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigurationError(
            f"cannot read the PIN file {path}", code="hsm_not_configured"
        ) from None
    refuse_shared(mode, f"the PIN file {path}")
    lines = text.splitlines()
    return Secret((lines[0] if lines else "").strip().encode("utf-8"), label="PIN")


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    """Where the key pair is: the module (a PKCS#11 library), the token's and the key's labels,
    the user PIN, and how long an operation may wait for the token."""

    module: Path
    token_label: str
    key_label: str
    pin: Secret
    timeout_seconds: float = 5.0


def _unavailable(message: str) -> KeyUnavailable:
    return KeyUnavailable(message, code="hsm_unavailable")


class _Pair:
    """The two objects of one master key in a token (typed ``Any``: the binding's stubs do
    not give its secret keys their encrypt and sign methods)."""

    __slots__ = ("aes", "mac")

    def __init__(self, aes: Any, mac: Any) -> None:
        self.aes = aes
        self.mac = mac


class _Token:
    """One token as this process sees it: a logged-in session and the key pairs found."""

    def __init__(self, config: Pkcs11Config) -> None:
        self._module = str(config.module)
        self._label = config.token_label
        self._lock = threading.Lock()
        self._session: pkcs11.Session | None = None
        self._pairs: dict[str, _Pair] = {}
        self._fatal: KeyUnavailable | None = None
        self._reload = False
        self._retry_at = 0.0
        self._pid = os.getpid()

    def run(self, config: Pkcs11Config, operation: Callable[[pkcs11.Session], _T]) -> _T:
        """``operation`` on this process's session, under the token's lock."""
        if not self._lock.acquire(timeout=config.timeout_seconds):
            raise _unavailable(
                f"the HSM token {self._label} did not answer within {config.timeout_seconds} s"
            )
        try:
            session = self._session_for(config)
            try:
                return operation(session)
            except _GONE as error:
                self._drop(retry_now=True)
                raise _unavailable(
                    f"the HSM token {self._label} failed ({type(error).__name__}); "
                    "the next operation reconnects"
                ) from None
        finally:
            self._lock.release()

    def pair(self, session: pkcs11.Session, key_label: str, *, create: bool) -> _Pair:
        found = self._pairs.get(key_label)
        if found is None:
            found = _find_pair(session, key_label, create=create)
            self._pairs[key_label] = found
        return found

    def _drop(self, *, retry_now: bool) -> None:
        self._session = None
        self._pairs = {}
        self._reload = True
        self._retry_at = time.monotonic() + (0.0 if retry_now else RETRY_SECONDS)

    def _session_for(self, config: Pkcs11Config) -> pkcs11.Session:
        if self._fatal is not None:
            raise KeyUnavailable(self._fatal.message, code=self._fatal.code)
        if self._pid != os.getpid():  # a forked child: the parent's session is not its own
            self._pid, self._session, self._pairs, self._reload = os.getpid(), None, {}, True
        if self._session is not None:
            return self._session
        if time.monotonic() < self._retry_at:
            raise _unavailable(f"the HSM token {self._label} is not available")
        try:
            self._session = self._log_in(config)
        except _GONE:
            self._drop(retry_now=False)
            raise _unavailable(f"the HSM token {self._label} is not available") from None
        self._reload = False
        return self._session

    def _log_in(self, config: Pkcs11Config) -> pkcs11.Session:
        try:
            library = pkcs11.lib(self._module)
        except p11.PKCS11Error:
            raise ConfigurationError(
                f"cannot load the PKCS#11 module {self._module}", code="hsm_not_configured"
            ) from None
        if self._reload:
            library.reinitialize()
        token = library.get_token(token_label=self._label)
        try:
            return token.open(user_pin=config.pin.reveal().decode("utf-8"), rw=True)
        except p11.UserAlreadyLoggedIn:  # another session of this process logged in
            return token.open(rw=True)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinExpired):
            self._fatal = KeyUnavailable(
                self._refused("the HSM token refused the PIN"), code="hsm_pin_incorrect"
            )
        except p11.PinLocked:
            self._fatal = KeyUnavailable(
                self._refused("the HSM token is locked (too many wrong PINs)"), code="hsm_locked"
            )
        raise KeyUnavailable(self._fatal.message, code=self._fatal.code)

    def _refused(self, message: str) -> str:
        """Count a refused PIN; the message says it will not be tried again."""
        global _refusals  # noqa: PLW0603 - one count per process, read by the metrics
        with _refusals_lock:
            _refusals += 1
        return f"{message} ({self._label}); it is not tried again: restart with the right PIN"


def _attributes(label: str, ident: bytes, **uses: bool) -> dict[Attribute, object]:
    template: dict[Attribute, object] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.LABEL: label,
        Attribute.ID: ident,
    }
    for name in ("ENCRYPT", "DECRYPT", "SIGN", "VERIFY", "WRAP", "UNWRAP", "DERIVE"):
        template[Attribute[name]] = uses.get(name.lower(), False)
    return template


def _one(session: pkcs11.Session, key_type: KeyType, label: str) -> pkcs11.SecretKey | None:
    found = list(
        session.get_objects(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: key_type,
                Attribute.LABEL: label,
            }
        )
    )
    if len(found) > 1:
        raise KeyUnavailable(
            f"the HSM token holds more than one {key_type.name} key labelled {label}",
            code="hsm_key_unsafe",
        )
    return found[0] if found else None  # type: ignore[return-value]


def _find_pair(session: pkcs11.Session, label: str, *, create: bool) -> _Pair:
    aes = _one(session, KeyType.AES, label)
    mac = _one(session, KeyType.GENERIC_SECRET, label)
    if aes is None and mac is None and create:
        ident = secrets.token_bytes(_ID_BYTES)
        aes = session.generate_key(
            KeyType.AES,
            KEY_BITS,
            store=True,
            template=_attributes(label, ident, encrypt=True, decrypt=True),
        )
        mac = session.generate_key(
            KeyType.GENERIC_SECRET,
            KEY_BITS,
            store=True,
            template=_attributes(label, ident, sign=True, verify=True),
        )
    if aes is None or mac is None:
        raise KeyUnavailable(
            f"the HSM token has no master key pair labelled {label} (an AES key and an HMAC "
            "key); `tiers init` or `tiers master-key rotate --to-pkcs11` creates one",
            code="hsm_key_missing",
        )
    for key in (aes, mac):
        if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
            raise KeyUnavailable(
                f"the HSM key {label} can be exported (CKA_EXTRACTABLE or not CKA_SENSITIVE); "
                "refusing it",
                code="hsm_key_unsafe",
            )
    if aes[Attribute.ID] != mac[Attribute.ID] or aes.key_length != KEY_BITS:
        raise KeyUnavailable(
            f"the HSM keys labelled {label} are not one pair of 256-bit keys", code="hsm_key_unsafe"
        )
    return _Pair(aes, mac)


_tokens: dict[tuple[str, str], _Token] = {}
_tokens_lock = threading.Lock()


def _token(config: Pkcs11Config) -> _Token:
    with _tokens_lock:
        key = (str(config.module), config.token_label)
        token = _tokens.get(key)
        if token is None:
            token = _tokens[key] = _Token(config)
        return token


class Pkcs11MasterKey(KeyEncryptionKey):
    """The master key as a key pair in a PKCS#11 token. ``repr`` names the token and label."""

    __slots__ = ("_config", "_token", "development", "source")
    backend = "pkcs11"

    def __init__(self, config: Pkcs11Config) -> None:
        self._config = config
        self._token = _token(config)
        self.source = f"PKCS#11 token {config.token_label}, key {config.key_label}"
        self.development = False

    @classmethod
    def open(cls, config: Pkcs11Config, *, create: bool = False) -> Pkcs11MasterKey:
        """The key pair labelled ``config.key_label``, generated in the token when ``create``
        and absent. Raises :class:`~errors.KeyUnavailable` (token, PIN or key faults)."""
        key = cls(config)
        key._run(lambda session, pair: None, create=create)
        return key

    @property
    def key_label(self) -> str:
        return self._config.key_label

    def _run(self, operation: Callable[[pkcs11.Session, _Pair], _T], *, create: bool = False) -> _T:
        label = self._config.key_label
        return self._token.run(
            self._config,
            lambda session: operation(session, self._token.pair(session, label, create=create)),
        )

    def encrypt(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        parameters = pkcs11.GCMParams(nonce, associated_data, 128)
        return self._run(
            lambda _s, pair: bytes(
                pair.aes.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=parameters)
            )
        )

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        parameters = pkcs11.GCMParams(nonce, associated_data, 128)

        def decrypt(_session: pkcs11.Session, pair: _Pair) -> bytes | None:
            try:
                return bytes(
                    pair.aes.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=parameters)
                )
            except (*_BAD_DATA, p11.GeneralError):
                # A tag that does not verify, or a token gone? The token answering a probe
                # says it was the data (a probe that fails raises as a token fault).
                pair.mac.sign(_PROBE, mechanism=Mechanism.SHA256_HMAC)
                return None

        plaintext = self._run(decrypt)
        if plaintext is None:
            raise InvalidTag
        return plaintext

    def mac(self, message: bytes) -> bytes:
        return self._run(
            lambda _s, pair: bytes(pair.mac.sign(message, mechanism=Mechanism.SHA256_HMAC))
        )

    def keyed_mac(self, label: bytes) -> Callable[[bytes], bytes]:
        """HMAC-SHA-256 in the token, of the message after ``label`` (length-prefixed, so it
        cannot meet the check value's or a derived secret's input)."""
        prefix = length_prefixed(label)
        return lambda message: self.mac(prefix + message)

    def check_available(self) -> None:
        self.mac(CHECK_LABEL)

    def describe(self) -> dict[str, Described]:
        def read(session: pkcs11.Session, pair: _Pair) -> dict[str, Described]:
            token = session.token
            found: dict[str, Described] = {
                "backend": self.backend,
                "module": str(self._config.module),
                "token label": token.label,
                "token model": token.model.strip(),
                "token manufacturer": token.manufacturer_id.strip(),
                "token serial": token.serial.decode("ascii", "replace").strip()
                if isinstance(token.serial, bytes)
                else str(token.serial),
                "key label": self._config.key_label,
                "key id": bytes(pair.aes[Attribute.ID]).hex(),
            }
            for name, key in (("wrapping key", pair.aes), ("MAC key", pair.mac)):
                found[f"{name} type"] = f"{key.key_type.name}-{key.key_length}"
                for attribute in (
                    Attribute.EXTRACTABLE,
                    Attribute.SENSITIVE,
                    Attribute.NEVER_EXTRACTABLE,
                    Attribute.ALWAYS_SENSITIVE,
                    Attribute.LOCAL,
                ):
                    found[f"{name} CKA_{attribute.name}"] = bool(key[attribute])
            return found

        return self._run(read)

    def __repr__(self) -> str:
        return f"<Pkcs11MasterKey {self._config.key_label} in token {self._config.token_label}>"

    __str__ = __repr__
