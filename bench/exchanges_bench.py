"""Exchanges: a partner's month of purchases sent to the hub (``send_exchange`` in process).

The file has one row per purchase, each on a card the deployment has never seen (the first
send registers, enrols and keys every card) and the same file is sent again (every card is
known: only look-ups). Rows per second of each send.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench.data import luhn_digit, write_lines

HEADER = "card,date,amount,store,category\n"


def write_purchases_file(path: Path, rows: int) -> Path:
    """``rows`` purchases on distinct cards."""
    cards = (f"4971{n:011d}" for n in range(rows))
    return write_lines(
        path,
        HEADER,
        (
            f"{card}{luhn_digit(card)},2026-11-{1 + n % 28:02d},{n % 5000 / 100:.2f},"
            f"S-{n % 500:03d},food\n"
            for n, card in enumerate(cards)
        ),
    )


def exchange_rates(path: Path, *, home: Path, database_url: str | None) -> dict[str, float]:
    """Rows per second of a first send (new cards) and of the same file sent again."""
    from tiers.admin import add_domain, initialise  # noqa: PLC0415 - after the data is written
    from tiers.auditing import Access  # noqa: PLC0415
    from tiers.deployment import Deployment  # noqa: PLC0415
    from tiers.exchanges import send_exchange  # noqa: PLC0415
    from tiers.settings import Settings  # noqa: PLC0415

    settings = Settings(home=home, database_url=database_url, argon2_profile="test")
    operator = Access("bench", "operator", "benchmark", datetime.now(UTC))
    initialise(settings, access=operator)
    deployment = Deployment.open(settings)
    partner = replace(operator, actor="casino-app", role="partner", domain="casino")
    rates: dict[str, float] = {}
    try:
        add_domain(deployment, access=operator, name="casino", role="partner")
        add_domain(deployment, access=operator, name="hub", role="hub")
        for run in ("new cards", "known cards"):
            started = time.perf_counter()
            report = send_exchange(
                deployment, access=partner, domain="casino", exchange_type="purchases", source=path
            )
            rates[run] = report.rows_in / (time.perf_counter() - started)
    finally:
        deployment.close()
    return rates
