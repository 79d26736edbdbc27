"""tiers: a trusted-third-party pseudonymisation service for loyalty coalitions.

The error tree (:mod:`errors`, the layer below every other) is importable from here too; the
rest of the public core is exported lazily, so that ``import tiers`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from errors import *  # noqa: F403 - the error tree is part of the public API
from errors import __all__ as _error_names

__version__ = "0.1.0"

_LAZY = {
    "Settings": "tiers.settings",
    "Pseudonym": "tiers.pseudonyms",
    "KINDS": "tiers.identifiers",
    "normalise": "tiers.identifiers",
}

__all__ = [*_error_names, *_LAZY, "__version__"]  # noqa: PLE0604 - names come from lists


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tiers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
