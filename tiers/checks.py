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
    """Every row of power that fails its seal; the check is logged with how many it found."""
    require(access, "audit_verify")
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
