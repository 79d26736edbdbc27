"""The access log: entries, hash chain, checkpoints, verification, export (see the audit issue)."""

from __future__ import annotations

__all__: list[str] = []
