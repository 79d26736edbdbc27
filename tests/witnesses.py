"""A witness that misbehaves, served for real over HTTP on 127.0.0.1, for the tests of the
service's side of witnessing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.note import COSIGNATURE, VerifierKey, cosign
from tests.hardening.service import free_port

__all__ = ["KEY", "misbehaving"]

WITNESS = Ed25519PrivateKey.generate()
KEY = VerifierKey.of("test/w", WITNESS, COSIGNATURE)


class _Witness(BaseHTTPRequestHandler):
    """A witness that misbehaves as ``server.mode`` says."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length).decode()
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "slow":
            time.sleep(3)
        if mode == "garbage":
            answer = b"\x00\xffnot a signature line\n"
        elif mode == "stranger":
            text = body.split("\n\n", 1)[1].rsplit("\n\n", 1)[0] + "\n"
            line = cosign(text, "test/w", Ed25519PrivateKey.generate(), 1)
            answer = line.line().encode()
        else:
            answer = b"refused\n"
        self.send_response(200 if mode != "refuses" else 403)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def misbehaving(mode: str) -> Iterator[int]:
    """A witness on 127.0.0.1 that misbehaves as ``mode`` says (``garbage``, ``stranger``,
    ``refuses``, ``slow``); yields its port."""
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Witness)
    server.mode = mode  # type: ignore[attr-defined]
    # The slow witness answers after the client gave up (its timeout): no traceback for that.
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
