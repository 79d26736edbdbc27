"""A real PKCS#11 token for the tests: SoftHSM2 (Debian's ``softhsm2``), a fresh token made by
``softhsm2-util`` in a folder of its own.

The suite makes one token at start (:func:`session_token`) and points ``SOFTHSM2_CONF`` at it
for the whole run: the PKCS#11 library reads that file once, when a process first loads it.
A test that takes the token away from a running service makes a token of its own
(:meth:`SoftHsm.create`) and gives the service its own ``SOFTHSM2_CONF``.

``TIERS_TEST_HSM`` names the database backends (``sqlite``, ``postgresql``, or ``all``) whose
tests keep the master key in the token instead of a file; CI sets it to ``postgresql``, so the
whole PostgreSQL half of the suite runs with the key in the token. ``TIERS_REQUIRE_HSM=1``
makes a missing SoftHSM2 a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, ObjectClass

MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)
PIN = "2718-2818"
SO_PIN = "3141-5926"
REQUIRE_HSM = os.environ.get("TIERS_REQUIRE_HSM") == "1"
_ON = {part.strip() for part in os.environ.get("TIERS_TEST_HSM", "").split(",") if part.strip()}


def hsm_on(backend: str) -> bool:
    """Whether tests on this database backend keep the master key in the token."""
    return "all" in _ON or backend in _ON


def module() -> Path | None:
    """The SoftHSM2 PKCS#11 module on this machine, if it is installed."""
    if shutil.which("softhsm2-util") is None:
        return None
    return next((path for path in MODULES if path.exists()), None)


@dataclass(frozen=True)
class SoftHsm:
    """One SoftHSM2 token in its own folder: its configuration file, label and PINs."""

    folder: Path
    label: str
    module: Path

    @property
    def conf(self) -> Path:
        return self.folder / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.folder / "tokens"

    @classmethod
    def create(cls, folder: Path, label: str = "tiers-tests") -> SoftHsm:
        """Initialise a fresh token in ``folder`` (``softhsm2-util --init-token``)."""
        found = module()
        if found is None:
            raise RuntimeError("SoftHSM2 is not installed (Debian's softhsm2)")
        hsm = cls(folder, label, found)
        hsm.tokens.mkdir(parents=True, exist_ok=True)
        hsm.conf.write_text(
            f"directories.tokendir = {hsm.tokens}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\n",
            encoding="utf-8",
        )
        subprocess.run(
            [
                shutil.which("softhsm2-util") or "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
                "--pin",
                PIN,
            ],
            env={**os.environ, "SOFTHSM2_CONF": str(hsm.conf)},
            check=True,
            capture_output=True,
        )
        return hsm

    def pin_file(self) -> Path:
        path = self.folder / "pin"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(PIN + "\n")
        return path

    def env(self, key_label: str) -> dict[str, str]:
        """The settings that keep a deployment's master key in this token under ``key_label``."""
        return {
            "TIERS_MASTER_KEY_BACKEND": "pkcs11",
            "TIERS_PKCS11_MODULE": str(self.module),
            "TIERS_PKCS11_TOKEN_LABEL": self.label,
            "TIERS_PKCS11_KEY_LABEL": key_label,
            "TIERS_PKCS11_PIN_FILE": str(self.pin_file()),
        }

    def settings(self, key_label: str) -> dict[str, object]:
        """:meth:`env` as keyword arguments of :class:`~tiers.settings.Settings`."""
        return {
            name.removeprefix("TIERS_").lower(): value
            for name, value in self.env(key_label).items()
        }

    def session(self) -> pkcs11.Session:
        """A session of this process on the token (the suite's own token only)."""
        token = pkcs11.lib(str(self.module)).get_token(token_label=self.label)
        try:
            return token.open(user_pin=PIN, rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            return token.open(rw=True)

    def key_types(self, key_label: str) -> list[str]:
        """The types of the secret keys labelled ``key_label`` in the token."""
        with self.session() as session:
            return sorted(
                found[Attribute.KEY_TYPE].name
                for found in session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_label}
                )
            )

    def destroy(self, key_label: str) -> None:
        """Remove the key pair labelled ``key_label`` (a test's teardown)."""
        with self.session() as session:
            for found in session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_label}
            ):
                found.destroy()


def new_label() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
