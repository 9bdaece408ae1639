"""A small authoritative DNS server on loopback (dnslib), serving test zones. For tests only.

    with DnsTestServer() as dns:                  # UDP and TCP on 127.0.0.1, a free port
        dns.add("example.org", "TXT", "v=spf1 ip4:192.0.2.1 -all")
        dns.add("example.org", "MX", "10 mx.example.org")
        dns.add("2.0.0.127.zen.test", "A", "127.0.0.2")
        dns.fail("broken.test")                   # SERVFAIL
        dns.drop("slow.test")                     # never answers (a timeout)
        resolver = DnsResolver([dns.host], port=dns.port)

Names not added answer NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading
from collections import defaultdict
from types import TracebackType

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer


def _free_port(host: str) -> int:
    # A port free for both UDP and TCP.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


class _Dropped(Exception):
    pass


class _Handler(DNSHandler):  # type: ignore[misc]
    def handle(self) -> None:
        try:
            super().handle()
        except _Dropped:
            pass


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, owner: DnsTestServer) -> None:
        self.owner = owner

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.owner.queries.append((qname, qtype))
        with self.owner._lock:
            if qname in self.owner._dropped:
                raise _Dropped  # nothing is sent: the client times out
            if qname in self.owner._failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            records = list(self.owner._records.get((qname, qtype), ()))
            cname = self.owner._records.get((qname, "CNAME"))
            exists = any(k[0] == qname for k in self.owner._records) or any(
                k[0].endswith("." + qname) for k in self.owner._records
            )
        if not records and cname and qtype != "CNAME":
            records = [("CNAME", cname[0][1], cname[0][2])]
        for rtype, value, ttl in records:
            zone = f"{qname}. {ttl} IN {rtype} {value}"
            reply.add_answer(*RR.fromZone(zone))
        if not records and not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DnsTestServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self._records: dict[tuple[str, str], list[tuple[str, str, int]]] = defaultdict(list)
        self._failing: set[str] = set()
        self._dropped: set[str] = set()
        self._lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []
        resolver = _ZoneResolver(self)
        self._servers = [
            DNSServer(resolver, address=host, port=self.port, tcp=False, logger=_QuietLogger(), handler=_Handler),
            DNSServer(resolver, address=host, port=self.port, tcp=True, logger=_QuietLogger(), handler=_Handler),
        ]

    def add(self, name: str, rtype: str, value: str, ttl: int = 300) -> None:
        """Add a record. TXT values are quoted for you and split into 255-octet strings."""
        rtype = rtype.upper()
        if rtype == "TXT" and not value.startswith('"'):
            chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
            value = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
        with self._lock:
            self._records[(name.rstrip(".").lower(), rtype)].append((rtype, value, ttl))

    def remove(self, name: str, rtype: str | None = None) -> None:
        with self._lock:
            for key in list(self._records):
                if key[0] == name.rstrip(".").lower() and (rtype is None or key[1] == rtype.upper()):
                    del self._records[key]

    def fail(self, name: str) -> None:
        with self._lock:
            self._failing.add(name.rstrip(".").lower())

    def drop(self, name: str) -> None:
        with self._lock:
            self._dropped.add(name.rstrip(".").lower())

    def start(self) -> DnsTestServer:
        for s in self._servers:
            s.start_thread()
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.stop()
            s.server.server_close()

    def __enter__(self) -> DnsTestServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class _QuietLogger:
    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None
