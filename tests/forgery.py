"""What an insider with write access to the database does to the access log, for the tests
that show it is detected: rewrite entries with consistent fresh hashes, truncate, fake a purge,
delete checkpoints."""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import Engine, create_engine, text

from audit import CompactRange, leaf_hash, parse_entry
from audit.entry import GENESIS
from tests.conftest import Database

__all__ = ["delete_checkpoints", "engine_of", "rewrite"]


def engine_of(database: Database) -> Engine:
    return create_engine(database.url or f"sqlite:///{database.home / 'tiers.db'}")


def rewrite(database: Database, *, start: int, drop_tail: int = 0, purge_to: int = 0) -> None:
    """Rewrite the log from ``start`` on with consistent fresh hashes, as a forger would: the
    entry at ``start`` gets another actor, every later one is re-chained, the state row is
    recomputed. ``drop_tail`` deletes the newest entries instead; ``purge_to`` marks the
    entries before it purged."""
    engine = engine_of(database)
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT seq, entry, hash FROM audit_entries ORDER BY seq"))
        entries = [(seq, entry.encode(), bytes(digest)) for seq, entry, digest in rows]
        if drop_tail:
            entries = entries[:-drop_tail]
            connection.execute(
                text("DELETE FROM audit_entries WHERE seq >= :n"), {"n": len(entries)}
            )
        previous = entries[start - 1][2].hex() if start else GENESIS
        for seq, data, _ in entries[start:] if not drop_tail else []:
            entry = parse_entry(data)
            changed = replace(entry, prev=previous)
            if seq == start:
                changed = replace(changed, actor="operator:mallory")
            new = changed.canonical()
            digest = leaf_hash(new)
            connection.execute(
                text("UPDATE audit_entries SET entry = :e, hash = :h, actor = :a WHERE seq = :s"),
                {"e": new.decode(), "h": digest, "a": changed.actor, "s": seq},
            )
            entries[seq] = (seq, new, digest)
            previous = digest.hex()
        tree = CompactRange()
        for _, _, digest in entries:
            tree.append(digest)
        state = {
            "n": len(entries),
            "head": entries[-1][2].hex(),
            "frontier": json.dumps([node.hex() for node in tree.nodes]),
        }
        connection.execute(
            text("UPDATE audit_state SET next_seq = :n, head = :head, frontier = :frontier"),
            state,
        )
        if purge_to:
            prefix = CompactRange()
            for _, _, digest in entries[:purge_to]:
                prefix.append(digest)
            connection.execute(
                text("UPDATE audit_state SET purged = :p, purge_frontier = :f"),
                {"p": purge_to, "f": json.dumps([node.hex() for node in prefix.nodes])},
            )
            connection.execute(text("DELETE FROM audit_entries WHERE seq < :p"), {"p": purge_to})
    engine.dispose()


def delete_checkpoints(database: Database, *, from_size: int = 0) -> None:
    engine = engine_of(database)
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM audit_checkpoints WHERE tree_size >= :n"), {"n": from_size}
        )
        connection.execute(text("UPDATE audit_state SET last_checkpoint = 0"))
    engine.dispose()
