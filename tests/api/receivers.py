"""Real HTTP(S) endpoints on 127.0.0.1 for the webhook tests, and a resolver that tests steer."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers each request with the next of `statuses` (then 200), with a Location header when
    `location` is given, and records every request whatever its method: `requests` holds
    (headers, body) pairs, `methods` the (method, path) pairs, `sni` the TLS server names."""

    def __init__(
        self,
        statuses: list[int],
        *,
        location: str = "",
        tls_context: ssl.SSLContext | None = None,
    ):
        self.statuses = list(statuses)
        self.location = location
        self.requests: list[tuple[dict, bytes]] = []
        self.methods: list[tuple[str, str]] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append((dict(self.headers), body))
                receiver.methods.append((self.command, self.path))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = do_HEAD = _answer  # noqa: N815 — http.server's names

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        scheme = "http"
        if tls_context is not None:
            tls_context.sni_callback = lambda _sock, name, _ctx: receiver.sni.append(name)
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeDNS:
    """socket.getaddrinfo with chosen answers for some names (each name's answers in turn, the
    last one repeated), the real resolver for every other name; counts the questions."""

    def __init__(self, real):
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.asked: list[str] = []

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        if host not in self.answers:
            return self.real(host, port, family, type, proto, flags)
        self.asked.append(host)
        queue = self.answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]
