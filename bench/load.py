"""A bounded HTTP load generator, run as its own process: ``connections`` threads, each on one
keep-alive connection to 127.0.0.1, send the same request for ``seconds`` (or, with
``--fresh-cards N``, a pseudonymise body of N card numbers no request sent before); prints one
JSON line (requests, errors, requests per second, latency percentiles in milliseconds)."""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", default="", help="a JSON body, or @FILE")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--fresh-cards", type=int, default=0, help="N new card numbers a request")
    options = parser.parse_args()
    body = options.body
    if body.startswith("@"):
        with open(body[1:], encoding="utf-8") as handle:
            body = handle.read()
    payload = body.encode() or None
    headers = {"Authorization": f"Bearer {options.token}", "X-Purpose": "benchmark"}
    if payload or options.fresh_cards:
        headers["Content-Type"] = "application/json"
    latencies: list[list[float]] = [[] for _ in range(options.connections)]
    errors = [0] * options.connections
    stop = time.monotonic() + options.seconds

    def fresh(index: int, sent: int) -> bytes:
        """Card numbers of this thread and request only: 6, thread, request, position."""
        values = [f"6{index:02d}{sent:06d}{n:05d}" for n in range(options.fresh_cards)]
        return json.dumps({"kind": "card", "values": values}).encode()

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=60)
        mine = latencies[index]
        while time.monotonic() < stop:
            body = fresh(index, len(mine)) if options.fresh_cards else payload
            started = time.perf_counter()
            try:
                connection.request(options.method, options.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status < 400
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=60)
            mine.append(time.perf_counter() - started)
            errors[index] += not ok

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(options.connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    every = sorted(x for mine in latencies for x in mine)
    cuts = statistics.quantiles(every, n=100) if len(every) > 1 else [0.0] * 99
    print(
        json.dumps(
            {
                "requests": len(every),
                "errors": sum(errors),
                "requests_per_second": round(len(every) / elapsed, 3),
                "p50_ms": round(cuts[49] * 1000, 2),
                "p95_ms": round(cuts[94] * 1000, 2),
                "p99_ms": round(cuts[98] * 1000, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
