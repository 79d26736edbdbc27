"""``tiers check``: what the database holds that the service would not obey, listed for the
operator (rows of power whose seal fails, see :mod:`tiers.sealing`)."""

from __future__ import annotations

from audit import Counts
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.sealing import Finding, find_tampered

__all__ = ["Finding", "check_deployment"]


@audited("check", domain_arg=None)
def check_deployment(deployment: Deployment, *, access: Access) -> list[Finding]:
    """Every row of power that fails its seal; the check is logged with how many it found
    (when the log can be written: a tampered signing keyring is among what it reports)."""
    require(access, "audit_verify")
    if deployment.log_fault is not None:  # nothing can be logged: the findings still matter
        with deployment.reading() as connection:
            return find_tampered(connection, deployment.master)
    with deployment.transaction() as connection:
        found = find_tampered(connection, deployment.master)
        deployment.record(
            connection,
            access,
            action="check",
            counts=Counts(records_out=len(found)),
            detail={"findings": len(found)},
        )
    return found
