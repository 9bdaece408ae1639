"""Protocol limits of the SMTP edge, and the gate that counts connections.

`EdgeLimits` holds every limit a listener enforces (the roles build it from `SmtpSection` or
`LmtpSection` in `apps/`); `ConnectionGate` is shared by every connection of one process (one
listener set). It is the only place that knows how many clients are connected.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

__all__ = ["ConnectionGate", "EdgeLimits", "NetworkList"]


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 2048  # data lines, CRLF included
    max_header_size: int = 1024 * 1024  # the header section, as Exim's header_maxsize
    max_command_length: int = 512  # RFC 5321 §4.5.3.1.4: 512 octets including CRLF
    max_unknown_commands: int = 5
    max_errors: int = 10
    max_transactions: int = 100
    idle_timeout: float = 300.0
    data_timeout: float = 600.0
    max_connections: int = 1000
    max_connections_per_client: int = 20
    proxy_timeout: float = 10.0
    tls_handshake_timeout: float = 30.0

    @property
    def command_limit(self) -> int:
        """The longest command line held in memory (CRLF included): RFC 1870 §3 and RFC 6531 §3.4 let
        ESMTP parameters lengthen MAIL and RCPT beyond the 512 octets of RFC 5321 §4.5.3.1.4."""
        return self.max_command_length + 64


@functools.lru_cache(maxsize=4096)
def _address(ip: str) -> IPv4Address | IPv6Address | None:
    """`ip` parsed (an IPv4-mapped IPv6 address as its IPv4 address), None when it is not one. Cached: a
    session asks several lists about the same client (XCLIENT and PROXY hosts, relay networks, ...)."""
    try:
        addr = ip_address(ip)
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped if isinstance(mapped, IPv4Address) else addr


class NetworkList:
    """Addresses and networks given as strings (`"10.0.0.0/8"`, `"127.0.0.1"`); empty matches nothing."""

    def __init__(self, items: list[str] | tuple[str, ...] | list[IPv4Network | IPv6Network] = ()) -> None:
        self._nets = tuple(ip_network(str(i), strict=False) for i in items)

    def __contains__(self, ip: object) -> bool:
        if not self._nets:
            return False
        addr = _address(str(ip))
        return addr is not None and any(addr.version == n.version and addr in n for n in self._nets)

    def __bool__(self) -> bool:
        return bool(self._nets)

    def __repr__(self) -> str:
        return f"NetworkList({[str(n) for n in self._nets]})"


class ConnectionGate:
    """Counts open connections in total and per client address.

    `admit(ip, exempt=...)` returns False when a limit is reached (the edge then answers 421 4.7.0
    and closes); every admitted connection must be `release`d exactly once. Trusted front hosts
    (PROXY load balancers, XCLIENT proxies) are exempt from the per-client limit: all their clients
    share one address.
    """

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self._total = 0
        self._per_client: Counter[str] = Counter()

    @property
    def open_connections(self) -> int:
        return self._total

    def admit(self, ip: str, *, exempt: bool = False) -> bool:
        if self._total >= self.max_total:
            return False
        if not exempt and self._per_client[ip] >= self.max_per_client:
            return False
        self._total += 1
        self._per_client[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self._total -= 1
        self._per_client[ip] -= 1
        if self._per_client[ip] <= 0:
            del self._per_client[ip]
