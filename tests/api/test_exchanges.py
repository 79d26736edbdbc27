"""Exchanges over HTTP: a partner's file reaches the hub's inbox in hub keys; a campaign goes
back to the SG; the inbox is acknowledged."""

from __future__ import annotations

import csv
import io

from tests.api.conftest import Api
from tests.conftest import assert_absent


def test_exchange_campaign_and_inbox_over_http(api: Api) -> None:
    casino, sncf, hub = (api.headers(n, "exchange") for n in ("casino-app", "sncf-app", "hub-app"))
    api.http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000001"]})
    api.http.post("/v1/cards/enrol", headers=sncf, json={"values": ["70000001"]})
    api.http.post(
        "/v1/cards/associate",
        headers=casino,
        json={"card": "10000001", "other_domain": "sncf", "other_card": "70000001"},
    )
    sent = api.http.post(
        "/v1/exchanges?type=purchases",
        headers={**casino, "Content-Type": "text/csv"},
        content=b"card,date,amount\n10000001,2026-11-02,9.90\nbad,2026-11-02,1\n",
    )
    assert (200, 2, 1, 1) == (
        sent.status_code,
        sent.json()["rows_in"],
        sent.json()["rows_out"],
        sent.json()["rows_rejected"],
    )
    refused = api.http.post(
        "/v1/exchanges?type=purchases",
        headers={**casino, "Content-Type": "text/csv"},
        content=b"card,email\n10000001,a@b.fr\n",
    )
    assert (400, "undeclared_column") == (refused.status_code, refused.json()["error"]["code"])
    (delivery,) = api.http.get("/v1/inbox", headers=hub).json()
    body = api.http.get(f"/v1/inbox/{delivery['id']}", headers=hub)
    rows = list(csv.reader(io.StringIO(body.text)))
    assert ["linking_key", "date", "amount"] == rows[0] and rows[1][0].startswith("hub.v1.")
    assert b"casino.v" not in body.content
    assert_absent(body.content, ["10000001", "70000001"], "the hub's delivery")
    assert 404 == api.http.get(f"/v1/inbox/{delivery['id']}", headers=casino).status_code
    routed = api.http.post(
        "/v1/campaigns", headers=hub, json={"name": "xmas", "linking_keys": [rows[1][0]]}
    ).json()
    assert ({"casino": 1}, {}) == (routed["per_sg"], routed["dropped"])
    kinds = {d["kind"] for d in api.http.get("/v1/inbox", headers=casino).json()}
    assert {"rejects", "campaign"} == kinds
    assert [] == api.http.get("/v1/inbox", headers=sncf).json()
    acked = api.http.post(f"/v1/inbox/{delivery['id']}/ack", headers=hub)
    assert (200, True) == (acked.status_code, acked.json()["acked"])  # as it is now
    assert [] == api.http.get("/v1/inbox", headers=hub).json()
    gone = api.http.post("/v1/customers/withdraw", headers=casino, json={"card": "10000001"})
    assert {"hub_keys_withdrawn": 3} == gone.json()
    assert 404 == api.http.get(f"/v1/links/{rows[1][0]}", headers=hub).status_code
