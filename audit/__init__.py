"""The access log: entries, hash chain, RFC 6962 Merkle checkpoints, verification, export.

Pure: nothing here touches a database or HTTP. Storing entries is the core's job
(``tiers.storage.audit_log``); this package says what an entry is and whether a log is intact.
"""

from __future__ import annotations

from audit.actions import CLIENT_EVENTS, Action
from audit.bundle import Bundle, dump_bundle, load_bundle, verify_bundle
from audit.checkpoint import ORIGIN, Checkpoint, CheckpointSigner, key_id
from audit.entry import GENESIS, AuditEntry, Counts, parse_entry
from audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from audit.report import render_report
from audit.verify import PurgeMark, StoredEntry, Verification, verify_log

__all__ = [
    "CLIENT_EVENTS",
    "GENESIS",
    "ORIGIN",
    "Action",
    "AuditEntry",
    "Bundle",
    "Checkpoint",
    "CheckpointSigner",
    "CompactRange",
    "Counts",
    "PurgeMark",
    "StoredEntry",
    "Verification",
    "consistency_proof",
    "dump_bundle",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "load_bundle",
    "parse_entry",
    "render_report",
    "root",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
