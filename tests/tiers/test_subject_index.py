"""Subject look-ups cover bulk operations: a customer is found in a batch, a file, an exchange
and a campaign that included them (through any of their linked cards), and in a withdrawal
made through another of their cards; nobody else is; the index is purged with the log."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta
from hashlib import blake2b
from pathlib import Path

from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.conftest import ACCESS, Database
from tests.tiers.test_links import at, hub_key, link_two_cards
from tiers._subject_index import BUCKET_BITS, REF_BYTES, ROW_REFS, bits_for, block_of, buckets_of
from tiers.audit_ops import lookup_subject, purge_log
from tiers.campaigns import send_campaign
from tiers.deployment import Deployment
from tiers.exchanges import send_exchange, withdraw_customer
from tiers.files import ColumnSpec, tokenise_file
from tiers.storage.database import alembic_config
from tiers.storage.tables import audit_subjects
from tiers.tokenisation import pseudonymise_values

AUDITOR = replace(ACCESS, actor="dpo", role="auditor", purpose="DPO request 9")
SNCF = replace(ACCESS, actor="sncf-app", role="partner", domain="sncf")
HUB = replace(ACCESS, actor="hub-app", role="hub", domain="hub")


def actions(deployment: Deployment, number: str, domain: str = "casino") -> list[str]:
    found = lookup_subject(deployment, access=AUDITOR, domain=domain, kind="card", value=number)
    return [e.action for e in found if e.action != "audit_subject"]


def test_bulk_operations_are_found_through_every_card(
    alliance: Deployment,
    tmp_path: Path,
) -> None:
    dep = alliance
    link_two_cards(dep)  # casino 10000001 and sncf 70000001, one customer, SG casino
    pseudonymise_values(
        dep, access=at(4), domain="casino", kind="card", values=["10000001", "10000009"]
    )
    source = tmp_path / "in.csv"
    source.write_text("card,store\n10000002,a\n10000001,b\n")
    tokenise_file(
        dep,
        access=at(4),
        source=source,
        output=tmp_path / "out.csv",
        domain="casino",
        columns=[ColumnSpec("card", "card")],
        keep=["store"],
    )
    purchases = io.BytesIO(b"card,date,amount\n70000001,2026-11-01,12\n79999999,2026-11-01,3\n")
    send_exchange(dep, access=SNCF, domain="sncf", exchange_type="purchases", source=purchases)
    send_campaign(
        dep,
        access=HUB,
        name="spring",
        linking_keys=[hub_key(dep, "casino", "10000001"), hub_key(dep, "casino", "10000002")],
    )
    bulk = {"pseudonymise", "tokenise_file", "exchange_send", "campaign_send"}
    assert bulk <= set(actions(dep, "10000001"))
    assert bulk <= set(actions(dep, "70000001", domain="sncf"))  # through the linked card
    # another customer of the same file, never linked (so the campaign reached no SG of theirs)
    assert {"tokenise_file"} == set(actions(dep, "10000002")) & bulk
    assert not set(actions(dep, "10000009")) & {"tokenise_file", "exchange_send"}

    withdraw_customer(dep, access=at(5), domain="casino", card="10000001")
    # the cards are unlinked now; the withdrawal is found through the other card all the same
    assert "customer_withdraw" in actions(dep, "70000001", domain="sncf")


def test_the_index_is_purged_with_the_log(
    alliance: Deployment,
    database: Database,
) -> None:
    dep = alliance
    values = [str(10_000_000 + n) for n in range(20)]
    pseudonymise_values(dep, access=at(1), domain="casino", kind="card", values=values)
    with dep.engine.connect() as connection:
        count = select(func.count()).select_from(audit_subjects)
        assert 0 < connection.execute(count).scalar_one()  # a row per bucket of references
    later = replace(ACCESS, now=ACCESS.now + timedelta(days=400))
    purge_log(dep, access=later)
    with dep.engine.connect() as connection:
        assert 0 == connection.execute(count).scalar_one()
    assert [] == actions(dep, values[0])
    assert database.audit_entries()  # the purge's own entry


@given(
    st.lists(st.lists(st.binary(min_size=32, max_size=32), max_size=700), max_size=4),
    st.binary(min_size=32, max_size=32),
)
def test_blocks_cut_into_buckets_as_a_model_groups_them(
    pieces: list[list[bytes]], secret: bytes
) -> None:
    """Whatever the blocks a file's workers hand back, the rows written hold each identifier's
    reference once, in the bucket of its first bits (as many as the entry's size needs, the
    count of bits in the bucket's number), sorted within each block; and a look-up's buckets
    of a reference include the one it was written in."""
    blocks = [block_of(secret, bases) for bases in pieces]
    written = buckets_of(blocks)
    count = sum(len(bases) for bases in pieces)
    bits = min(BUCKET_BITS, max(0, (count // ROW_REFS).bit_length() - 1))
    assert bits == bits_for(count)
    model: dict[int, list[bytes]] = {}
    for bases in pieces:
        refs = [blake2b(base, key=secret, digest_size=REF_BYTES).digest() for base in bases]
        for ref in sorted(refs):
            prefix = int.from_bytes(ref) >> (64 - bits)
            model.setdefault((1 << bits) | prefix, []).append(ref)
    assert {bucket: b"".join(refs) for bucket, refs in model.items()} == written
    assert all(
        len(row) <= 4 * ROW_REFS * REF_BYTES or bits == BUCKET_BITS for row in written.values()
    )


def test_small_entries_write_few_rows() -> None:
    secret = bytes(32)
    assert 1 == len(buckets_of([block_of(secret, [bytes([n]) * 32 for n in range(10)])]))
    many = [n.to_bytes(32) for n in range(10_000)]
    assert 1 << bits_for(10_000) >= len(buckets_of([block_of(secret, many)])) > 16


def test_migration_0016_keeps_the_rows_grouped_by_12_bits(alliance: Deployment) -> None:
    """Rows written before 0016 (every entry grouped by its references' first 12 bits, the
    bucket being the prefix) are found by look-ups after it."""
    pseudonymise_values(
        alliance, access=at(4), domain="casino", kind="card", values=["10000001", "10000002"]
    )
    with alliance.engine.begin() as connection:
        ((seq, refs),) = connection.execute(select(audit_subjects.c.seq, audit_subjects.c.refs))
        command.downgrade(alembic_config(connection), "0015")  # drops rows of fewer bits
        assert 0 == connection.execute(select(func.count()).select_from(audit_subjects)).scalar()
        old_rows = {}
        for at_byte in range(0, len(refs), REF_BYTES):
            ref = refs[at_byte : at_byte + REF_BYTES]
            prefix = int.from_bytes(ref) >> (64 - BUCKET_BITS)
            old_rows[prefix] = old_rows.get(prefix, b"") + ref
        connection.execute(
            audit_subjects.insert(),
            [{"bucket": b, "seq": seq, "refs": r} for b, r in old_rows.items()],
        )
        command.upgrade(alembic_config(connection), "head")
        buckets = {b for (b,) in connection.execute(select(audit_subjects.c.bucket))}
    assert {(1 << BUCKET_BITS) | prefix for prefix in old_rows} == buckets
    assert "pseudonymise" in actions(alliance, "10000001")
    assert "pseudonymise" in actions(alliance, "10000002")


def test_a_block_s_starts_are_the_same_bisected_or_counted() -> None:
    """More references than buckets are cut by bisection, fewer by counting: both give each
    bucket's first reference."""
    secret = bytes(range(32))
    for count in (0, 1, 4095, 4096, 9000):
        block = block_of(secret, [n.to_bytes(32) for n in range(count)])
        refs = [block.refs[at : at + REF_BYTES] for at in range(0, len(block.refs), REF_BYTES)]
        tops = [int.from_bytes(ref) >> (64 - BUCKET_BITS) for ref in refs]
        expected = [sum(1 for top in tops if top < b) for b in range((1 << BUCKET_BITS) + 1)]
        assert expected == list(block.starts), count
