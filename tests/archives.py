"""Reading and rewriting backup archives, as someone editing a backup would."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

__all__ = ["read_members", "write_members"]


def read_members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as source:
        return {m.name: source.extractfile(m).read() for m in source.getmembers() if m.isfile()}  # type: ignore[union-attr]


def write_members(members: dict[str, bytes], target: Path) -> Path:
    with tarfile.open(target, "w:gz") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return target
