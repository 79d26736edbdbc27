"""Three ``tiers serve`` nodes on one PostgreSQL behind nginx, round robin: they answer as one
node would. A file job's parts land on different nodes; a delivery one node wrote is served by
the others; two nodes racing to link one customer agree on one winner; a node killed mid-job
fails that job cleanly while the others keep serving and take over the checkpoints; a node with
another master key refuses to serve. The access log verifies at the end, and no clear number
is found in the database, the nodes' folders or nginx's log."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import secrets
import threading
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import assert_absent
from tests.nodes.cluster import Cluster, Node, status

pytestmark = pytest.mark.slow

CARDS = [f"4970{n:012d}" for n in range(1, 301)]  # Luhn-free numbers: a card kind of their own
PURPOSE = {"X-Purpose": "cluster test"}


def _client(cluster: Cluster, port: int | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port or cluster.port}", timeout=120)


def _keys(cluster: Cluster) -> dict[str, dict[str, str]]:
    cluster.tiers("init")
    for name, role in (("casino", "partner"), ("sncf", "partner"), ("hub", "hub")):
        cluster.tiers("domain", "add", name, "--role", role)
    headers = {}
    for name, domain, role in (
        ("casino-app", "casino", "partner"),
        ("sncf-app", "sncf", "partner"),
        ("hub-app", "hub", "hub"),
        ("dpo", None, "auditor"),
    ):
        where = ["--domain", domain] if domain else []
        key = cluster.tiers("client", "add", name, "--role", role, *where).stdout
        headers[name] = {"Authorization": f"Bearer {key.strip().split()[-1]}", **PURPOSE}
    return headers


def _job_node(cluster: Cluster, job_id: str) -> Node:
    engine = create_engine(str(cluster.database.url))
    try:
        with engine.connect() as connection:
            name = connection.execute(
                text("SELECT node FROM job_nodes WHERE job_id = :id"), {"id": job_id}
            ).scalar_one()
    finally:
        engine.dispose()
    (node,) = [n for n in cluster.nodes if n.name == name]
    return node


def _file(cards: list[str]) -> bytes:
    return ("card,amount\n" + "".join(f"{c},{i}.50\n" for i, c in enumerate(cards))).encode()


def _upload_in_parts(
    http: httpx.Client, headers: dict[str, str], content: bytes, parts: int
) -> dict:
    opened = http.post(
        "/v1/files", headers=headers, json={"column": ["card=card"], "keep": ["amount"]}
    )
    assert opened.status_code in {200, 202}, opened.text
    job_id = opened.json()["id"]
    size = -(-len(content) // parts)
    for number in range(1, parts + 1):
        chunk = content[(number - 1) * size : number * size]
        sent = http.put(
            f"/v1/files/{job_id}/parts/{number}",
            headers={**headers, "Content-Type": "application/octet-stream"},
            content=chunk,
        )
        assert (200, True) == (sent.status_code, sent.json()["applied"]), sent.text
    again = http.put(  # part 1 sent again, to whichever node: recognised, not applied twice
        f"/v1/files/{job_id}/parts/1",
        headers={**headers, "Content-Type": "application/octet-stream"},
        content=content[:size],
    )
    assert (200, False) == (again.status_code, again.json()["applied"]), again.text
    done = http.post(f"/v1/files/{job_id}/complete", headers=headers, json={"parts": parts})
    assert (200, "done") == (done.status_code, done.json()["state"]), done.text
    return done.json()


def test_three_nodes_behind_nginx_serve_as_one(cluster: Cluster) -> None:
    headers = _keys(cluster)
    casino, sncf, hub = headers["casino-app"], headers["sncf-app"], headers["hub-app"]
    nodes = [cluster.add_node() for _ in range(3)]
    for node in nodes:
        cluster.start(node)
    cluster.start_nginx(nodes)
    http = _client(cluster)

    # Single calls: one pseudonym, whichever node computes it.
    single = [
        http.post("/v1/pseudonymise", headers=casino, json={"kind": "card", "values": CARDS[:3]})
        for _ in range(6)
    ]
    assert 1 == len({tuple(r.json()["pseudonyms"]) for r in single})
    assert {n.name for n in nodes} == {name for _, _, name in cluster.served("/v1/pseudonymise")}
    expected = dict(
        zip(
            CARDS,
            http.post(
                "/v1/pseudonymise", headers=casino, json={"kind": "card", "values": CARDS}
            ).json()["pseudonyms"],
            strict=True,
        )
    )

    # A file job in parts: its parts land on several nodes, the job's own among them or not.
    content = _file(CARDS)
    job = _upload_in_parts(http, casino, content, parts=6)
    part_nodes = {name for _, _, name in cluster.served(r"/v1/files/\w+/parts/\d+")}
    assert len(part_nodes) >= 2
    # Every node serves what one node wrote: asked until each has served it (nginx's
    # round-robin also turns with the other requests, so three asks may miss a node).
    outputs, served_by = [], set()
    for _ in range(12):
        outputs.append(http.get(f"/v1/jobs/{job['id']}/output", headers=casino))
        served_by = {name for _, _, name in cluster.served(rf"/v1/jobs/{job['id']}/output")}
        if served_by == {n.name for n in nodes}:
            break
    assert {n.name for n in nodes} == served_by, cluster.nginx_errors()
    assert 1 == len({o.content for o in outputs})
    rows = list(csv.reader(io.StringIO(outputs[0].text)))
    assert len(CARDS) == len(rows) - 1 == job["rows_out"]
    assert [expected[c] for c in CARDS] == [row[0] for row in rows[1:]]
    assert [f"{i}.50" for i in range(len(CARDS))] == [row[1] for row in rows[1:]]

    # Two nodes race to link one customer's cards: exactly one association wins.
    http.post("/v1/cards/enrol", headers=casino, json={"values": ["10000001"]})
    http.post("/v1/cards/enrol", headers=sncf, json={"values": ["70000001"]})
    answers: list[dict] = []

    def associate(node: Node) -> None:
        with _client(cluster, node.port) as direct:
            reply = direct.post(
                "/v1/cards/associate",
                headers=casino,
                json={"card": "10000001", "other_domain": "sncf", "other_card": "70000001"},
            )
            assert 200 == reply.status_code, reply.text
            answers.append(reply.json())

    racers = [threading.Thread(target=associate, args=(node,)) for node in nodes[:2]]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert [False, True] == sorted(a["changed"] for a in answers)

    # An exchange written by one node, read by the hub from every node; a campaign back.
    sent = http.post(
        "/v1/exchanges?type=purchases",
        headers={**casino, "Content-Type": "text/csv"},
        content=b"card,date,amount\n10000001,2026-11-02,9.90\n",
    )
    assert 200 == sent.status_code, sent.text
    (delivery,) = [d for d in http.get("/v1/inbox", headers=hub).json() if d["kind"] == "exchange"]
    reads = [http.get(f"/v1/inbox/{delivery['id']}", headers=hub) for _ in range(3)]
    assert 1 == len({r.content for r in reads})
    assert hashlib.sha256(reads[0].content).hexdigest() == delivery["sha256"]
    writer = {name for _, _, name in cluster.served("/v1/exchanges")}
    readers = {name for _, _, name in cluster.served(rf"/v1/inbox/{delivery['id']}")}
    assert readers - writer, "no node but the writer served the delivery"
    linking_key = list(csv.reader(io.StringIO(reads[0].text)))[1][0]
    routed = http.post(
        "/v1/campaigns", headers=hub, json={"name": "xmas", "linking_keys": [linking_key]}
    )
    assert {"casino": 1} == routed.json()["per_sg"]
    assert "campaign" in {d["kind"] for d in http.get("/v1/inbox", headers=casino).json()}
    gone = http.post("/v1/customers/withdraw", headers=casino, json={"card": "10000001"})
    assert 200 == gone.status_code, gone.text
    assert 404 == http.get(f"/v1/links/{linking_key}", headers=hub).status_code

    _a_console_session_opened_on_one_node_works_on_the_others(nodes, headers["dpo"])
    _kill_a_node_mid_job(cluster, http, casino, content)
    _another_master_key_is_refused(cluster)

    http.close()
    cluster.close()
    verified = cluster.tiers("audit", "verify").stdout
    assert verified.startswith("audit log intact"), verified
    _no_clear_number_anywhere(cluster)


def _a_console_session_opened_on_one_node_works_on_the_others(
    nodes: list[Node], dpo: dict[str, str]
) -> None:
    """Sessions live in the database and the CSRF secret comes from the master key: a browser
    signed in through one node reads the log through any other."""
    with httpx.Client(timeout=60) as browser:
        first = f"http://{nodes[0].address}"
        browser.get(f"{first}/console/login")
        csrf = browser.cookies.get("tiers_csrf")
        assert csrf
        signed = browser.post(
            f"{first}/console/login",
            data={
                "api_key": dpo["Authorization"].removeprefix("Bearer "),
                "purpose": "inspection",
                "csrftoken": csrf,
            },
            follow_redirects=False,
        )
        assert 303 == signed.status_code, signed.text
        for node in nodes[1:]:
            page = browser.get(f"http://{node.address}/console/log", follow_redirects=False)
            assert 200 == page.status_code, page.text
            assert "console_sign_in" in page.text


def _kill_a_node_mid_job(
    cluster: Cluster, http: httpx.Client, casino: dict[str, str], content: bytes
) -> None:
    opened = http.post(
        "/v1/files", headers=casino, json={"column": ["card=card"], "keep": ["amount"]}
    )
    job_id = opened.json()["id"]
    first = content[: len(content) // 2]
    sent = http.put(
        f"/v1/files/{job_id}/parts/1",
        headers={**casino, "Content-Type": "application/octet-stream"},
        content=first,
    )
    assert 200 == sent.status_code, sent.text
    victim = _job_node(cluster, job_id)
    signer_before = _signers(cluster)
    cluster.kill(victim)
    # The others keep serving (nginx passes the victim's share on to them).
    for _ in range(6):
        assert (
            200
            == http.post(
                "/v1/pseudonymise",
                headers=casino,
                json={"kind": "card", "values": ["4970000000000001"]},
            ).status_code
        )
    # The job fails cleanly: its runner saw its node die; no output, nothing half delivered.
    deadline = time.monotonic() + 30
    while (state := http.get(f"/v1/jobs/{job_id}", headers=casino).json())["state"] == "running":
        assert time.monotonic() < deadline, "the killed node's job never ended"
        time.sleep(0.2)
    assert ("failed", "interrupted") == (state["state"], state["error_code"])
    later = http.put(
        f"/v1/files/{job_id}/parts/2",
        headers={**casino, "Content-Type": "application/octet-stream"},
        content=content[len(first) :],
    )
    assert (409, "job_ended") == (later.status_code, later.json()["error"]["code"])
    assert 404 == http.get(f"/v1/jobs/{job_id}/output", headers=casino).status_code
    # Sent again, the file is tokenised whole by the nodes left.
    again = _upload_in_parts(http, casino, content, parts=3)
    assert (len(CARDS), 0) == (again["rows_out"], again["rows_rejected"])
    # One of the nodes left signs the checkpoints now, and only one.
    deadline = time.monotonic() + 20
    while _signers(cluster) != 1:
        assert time.monotonic() < deadline, f"signers: {_signers(cluster)} (was {signer_before})"
        time.sleep(0.2)


def _signers(cluster: Cluster) -> int:
    """How many live nodes hold the signing lease (their metrics say)."""
    count = 0
    for node in cluster.nodes:
        if node.process is None or node.process.poll() is not None:
            continue
        metrics = httpx.get(f"http://{node.address}/metrics", timeout=10).text
        count += int(re.search(r"^tiers_checkpoint_signer (\S+)$", metrics, re.M).group(1) == "1.0")
    return count


def _another_master_key_is_refused(cluster: Cluster) -> None:
    """A node given another master key refuses to start rather than make other pseudonyms
    (the database's check value tells)."""
    stranger = cluster.add_node()
    other_key = stranger.home / "other.key"
    other_key.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    other_key.chmod(0o600)
    for name in [
        n for n in stranger.env if n.startswith("TIERS_PKCS11") or n == "TIERS_MASTER_KEY_BACKEND"
    ]:
        del stranger.env[name]
    stranger.env["TIERS_MASTER_KEY_FILE"] = str(other_key)
    cluster.launch(stranger)
    assert stranger.process is not None
    assert 0 != stranger.process.wait(timeout=60)  # it never starts serving
    assert 0 == status(stranger.port, "/readyz")
    assert "[wrong_master_key]" in (stranger.home / "server.log").read_text()


def _no_clear_number_anywhere(cluster: Cluster) -> None:
    clear = [*CARDS[:20], CARDS[-1], "10000001", "70000001"]
    assert_absent(cluster.database.stored_bytes(), clear, "the database")
    for path in cluster.root.rglob("*"):
        if path.is_file() and not path.name.endswith((".key", ".conf")):
            assert_absent(path.read_bytes(), clear, str(path.relative_to(cluster.root)))
