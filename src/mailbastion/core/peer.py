"""Who is on the other end of a connection."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    bits: int = 0
    peer_cert_subject: str | None = None  # set when the client presented a verified certificate
    client_verified: bool = False  # the client presented a certificate our trust store verified


@dataclass(frozen=True, slots=True)
class PeerInfo:
    ip: str
    port: int = 0
    hostname: str | None = None  # verified reverse name, or the XCLIENT/PROXY-supplied one
    helo: str = ""
    tls: TlsInfo | None = None
    authenticated_as: str | None = None  # SASL identity (submission)
    is_relay_network: bool = False  # client address is in relay.networks
    session_id: str = ""

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.ip)

    @property
    def may_relay(self) -> bool:
        return self.authenticated_as is not None or self.is_relay_network

    def evolve(self, **changes: object) -> PeerInfo:
        return replace(self, **changes)  # type: ignore[arg-type]
