"""Attachment rules: policy files, their schema and the evaluator (pure: no database, no HTTP)."""

from __future__ import annotations

from policy.evaluator import (
    Associate,
    Card,
    Customer,
    Decision,
    Dissociate,
    Transfer,
    evaluate,
)
from policy.schema import AttachmentPolicy, PolicyError, load_policy

__all__ = [
    "Associate",
    "AttachmentPolicy",
    "Card",
    "Customer",
    "Decision",
    "Dissociate",
    "PolicyError",
    "Transfer",
    "evaluate",
    "load_policy",
]
