"""A TCP relay for the tests: between a client and a real server, to cut the line or to see
every byte that crossed it."""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["Relay"]


class Relay:
    """Forwards 127.0.0.1:<port> to a server (the database, a service); ``cut()`` drops every
    connection. It keeps every byte that went through it each way, to be searched:
    ``upstream`` (to the server) and ``downstream`` (back)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.upstream = bytearray()
        self.downstream = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.sockets += [client, server]
            for a, b, seen in ((client, server, self.upstream), (server, client, self.downstream)):
                threading.Thread(target=self._pipe, args=(a, b, seen), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, seen: bytearray) -> None:
        try:
            while data := source.recv(65536):
                seen += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.sockets.clear()

    def restore(self) -> None:
        self.up = True
