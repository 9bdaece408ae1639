"""A small HTTPS server on loopback for tests: MTA-STS policy files by Host, and a sink for TLS-RPT POSTs.

    with HttpsTestServer(cert_chain, key) as web:                   # a free port on 127.0.0.1, in a thread
        web.serve("mta-sts.sts.test", "/.well-known/mta-sts.txt", policy_text)   # text/plain, 200
        web.serve("mta-sts.bad.test", "/.well-known/mta-sts.txt", "x", status=302,
                  headers={"Location": "https://elsewhere.test/"})
        web.posts   -> [(host, path, headers, body)] of every POST received (answered 201)

The server presents one certificate; SNI-based choice is not needed (the tests issue one certificate
naming every policy host, or start one server per certificate).
"""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path
from types import TracebackType


class HttpsTestServer:
    def __init__(self, cert_chain: Path, key: Path, host: str = "127.0.0.1") -> None:
        self.routes: dict[tuple[str, str], tuple[int, bytes, str, dict[str, str]]] = {}
        self.posts: list[tuple[str, str, dict[str, str], bytes]] = []
        self.requests: list[tuple[str, str, str]] = []  # (method, host, path)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _host(self) -> str:
                return (self.headers.get("Host") or "").split(":")[0].lower()

            def do_GET(self) -> None:
                host = self._host()
                owner.requests.append(("GET", host, self.path))
                status, body, ctype, headers = owner.routes.get(
                    (host, self.path), (404, b"not found\n", "text/plain", {}))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                owner.requests.append(("POST", self._host(), self.path))
                owner.posts.append((self._host(), self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_chain), str(key))
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])

    def serve(self, host: str, path: str, body: str | bytes, *, status: int = 200, content_type: str = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.routes[(host.lower(), path)] = (status, data, content_type, headers or {})

    def start(self) -> HttpsTestServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="https-test").start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HttpsTestServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["HttpsTestServer"]
