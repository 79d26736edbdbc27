"""Attachment rules: policy files, their schema and evaluator (see the card-links issue)."""

from __future__ import annotations

__all__: list[str] = []
