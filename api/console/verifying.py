"""Verifications of the log started from the console: each runs in a thread of its own and
reports how many entries it has checked, so that a page can show its progress while it runs
(the page reloads itself: the console runs no script).

Runs are kept in this process, for their user's session only, and forgotten an hour after
they end. With several workers, the progress page is answered by the worker that runs the
verification only when the browser reaches it again (the operator's guide says so); the
result is in the access log whichever worker answers.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from errors import AuditIntegrityError, TiersError
from tiers.audit_ops import verify_stored
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.vitals import read_vitals

__all__ = ["Run", "Runs"]

_KEEP_SECONDS = 3600


@dataclass
class Run:
    owner: int  # the client whose session started it
    total: int  # entries in the log when it started
    checked: int = 0
    done: bool = False
    intact: bool | None = None
    summary: str = ""
    code: str | None = None
    first_bad: int | None = None
    ended_at: float | None = None


class Runs:
    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def start(self, deployment: Deployment, access: Access) -> str:
        """Start a verification as ``access``; the id of its run."""
        total = read_vitals(deployment, now=access.now).log_entries
        run = Run(owner=access.client_id or 0, total=total)
        run_id = secrets.token_urlsafe(16)
        with self._lock:
            self._forget_old()
            self._runs[run_id] = run
        thread = threading.Thread(
            target=self._verify, args=(deployment, access, run), name="console-verify", daemon=True
        )
        thread.start()
        return run_id

    def get(self, run_id: str, owner: int) -> Run | None:
        with self._lock:
            run = self._runs.get(run_id)
        return run if run is not None and run.owner == owner else None

    def _forget_old(self) -> None:
        now = time.monotonic()
        for run_id, run in list(self._runs.items()):
            if run.ended_at is not None and now - run.ended_at > _KEEP_SECONDS:
                del self._runs[run_id]

    @staticmethod
    def _verify(deployment: Deployment, access: Access, run: Run) -> None:
        def progress(count: int) -> None:
            run.checked = count

        try:
            result = verify_stored(deployment, access=access, progress=progress)
            run.intact, run.summary, run.checked = True, result.summary(), result.entries
        except AuditIntegrityError as error:
            run.intact, run.summary, run.code = False, error.message, error.code
            run.first_bad = error.seq
        except TiersError as error:
            run.intact, run.summary, run.code = None, error.message, error.code
        except Exception as error:  # noqa: BLE001 - reported on the page, by its type only
            run.intact, run.summary, run.code = None, type(error).__name__, "internal"
        finally:
            run.done, run.ended_at = True, time.monotonic()
