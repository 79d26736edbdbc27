"""Exchange, inbox, campaign and withdrawal commands through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, Database


def test_a_month_of_exchanges_and_a_campaign_from_the_command_line(
    cli: Cli, database: Database, tmp_path: Path
) -> None:
    cli.ok("init")
    for name in ("casino", "sncf"):
        cli.ok("domain", "add", name, "--role", "partner")
    cli.ok("domain", "add", "hub", "--role", "hub")
    cli.ok("card", "enrol", "--domain", "casino", "10000001")
    cli.ok("card", "enrol", "--domain", "sncf", "70000001")
    cli.ok(
        "card", "associate", "10000001", "70000001", "--domain", "casino", "--other-domain", "sncf"
    )
    month = tmp_path / "november.csv"
    month.write_text(
        "card,date,amount,store\n10000001,2026-11-02,12.50,C-042\n10000001,2026-11-30,oops,C-042\n"
    )
    sent = cli("exchange", "send", str(month), "--domain", "casino", "--type", "purchases")
    assert 2 == sent.exit_code and "line 3: amount: bad_decimal" in sent.stderr
    listing = cli.ok("inbox", "list", "--domain", "hub").stdout
    (delivery_id,) = [word for word in listing.split() if len(word) == 32]
    hub_csv = cli.ok("inbox", "get", delivery_id, "--domain", "hub").stdout
    key = hub_csv.splitlines()[1].split(",")[0]
    assert key.startswith("hub.v1.") and "10000001" not in hub_csv
    keys = tmp_path / "targets.txt"
    keys.write_text(key + "\n")
    routed = json.loads(cli.ok("campaign", "send", "xmas", "--keys", str(keys), "--json").stdout)
    assert (routed["delivered"], routed["dropped"]) == ({"casino": 1}, {})
    assert "delivered: casino 1" in cli.ok("campaign", "send", "xmas-2", "--keys", str(keys)).stdout
    cli.ok("inbox", "ack", delivery_id, "--domain", "hub")
    assert delivery_id not in cli.ok("inbox", "list", "--domain", "hub").stdout
    withdrawn = cli.ok("customer", "withdraw", "10000001", "--domain", "casino").stdout
    assert "3 hub keys" in withdrawn
    missing = cli("link", "show", key)
    assert 1 == missing.exit_code and "[unknown_key]" in missing.stderr
