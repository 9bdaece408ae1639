"""The PROXY protocol header (HAProxy, versions 1 and 2), parsed from the first bytes of a connection.

A load balancer in front of the MX says who the real client is before any SMTP byte:

    v1  "PROXY TCP4 198.51.100.9 192.0.2.1 40000 25\\r\\n"        text, at most 107 octets
    v2  "\\r\\n\\r\\n\\x00\\r\\nQUIT\\n" + ver/cmd + family + length + addresses [+ TLVs]   binary

Spec: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt. The edge reads a header only
from the addresses in `smtp.proxy_protocol_from`; this module only parses.

    parse_proxy(data) -> ProxyHeader    a whole header (`consumed` octets of `data`)
                      -> None           not enough bytes yet
                      raises ProxyError not a valid header (the edge closes the connection)

A LOCAL (v2) or UNKNOWN (v1) header, or a v2 address family without an IP (UNIX, UNSPEC), carries no
client address (`source` None): a health check of the balancer itself; the socket's peer stays.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["ProxyError", "ProxyHeader", "parse_proxy"]

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the spec's longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX_PAYLOAD = 2048  # addresses plus TLVs; balancers send far less
_V2_ADDRESS = {0x11: (4, 12), 0x21: (16, 36)}  # TCP over IPv4 / IPv6: (address octets, block length)
_V2_NO_ADDRESS = {0x00, 0x31}  # UNSPEC, UNIX stream: no IP to take
_V1_FAMILY = {"TCP4": 4, "TCP6": 6}


class ProxyError(ValueError):
    """Not a valid PROXY header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    source: str | None  # the real client's address; None: LOCAL/UNKNOWN (keep the socket's peer)
    source_port: int
    consumed: int  # octets of the header, to drop from the input


def parse_proxy(data: bytes | bytearray) -> ProxyHeader | None:
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if not data:
        return None
    raise ProxyError("not a PROXY protocol header")


def _parse_v1(data: bytes | bytearray) -> ProxyHeader | None:
    if not data.startswith(V1_PREFIX):
        if V1_PREFIX.startswith(bytes(data[: len(V1_PREFIX)])):
            return None
        raise ProxyError("not a PROXY v1 header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyError("PROXY v1 header longer than 107 octets")
        return None
    try:
        text = bytes(data[:end]).decode("ascii")
    except UnicodeDecodeError:
        raise ProxyError("PROXY v1 header is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(None, 0, end + 2)  # the rest of the line is to be ignored
    if len(parts) != 6 or parts[1] not in _V1_FAMILY:
        raise ProxyError("PROXY v1 header must be PROXY TCP4|TCP6 src dst sport dport")
    version = _V1_FAMILY[parts[1]]
    try:
        src, dst = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
    except ValueError:
        raise ProxyError("PROXY v1 header has an invalid address") from None
    if src.version != version or dst.version != version:
        raise ProxyError("PROXY v1 address does not match its family")
    ports = [_port(p) for p in parts[4:6]]
    return ProxyHeader(str(src), ports[0], end + 2)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise ProxyError("PROXY v1 header has an invalid port")
    port = int(text)
    if port > 65535:
        raise ProxyError("PROXY v1 header has an invalid port")
    return port


def _parse_v2(data: bytes | bytearray) -> ProxyHeader | None:
    head = bytes(data[: len(V2_SIGNATURE)])
    if head != V2_SIGNATURE[: len(head)]:
        raise ProxyError("not a PROXY v2 header")
    if len(data) < 16:
        return None
    ver_cmd, family, length = data[12], data[13], struct.unpack_from("!H", data, 14)[0]
    if ver_cmd >> 4 != 2:
        raise ProxyError("PROXY v2 header with an unknown version")
    command = ver_cmd & 0x0F
    if command not in (0, 1):
        raise ProxyError("PROXY v2 header with an unknown command")
    if length > V2_MAX_PAYLOAD:
        raise ProxyError("PROXY v2 header too long")
    total = 16 + length
    if len(data) < total:
        return None
    if command == 0 or family in _V2_NO_ADDRESS:
        return ProxyHeader(None, 0, total)  # LOCAL: the balancer's own connection (health check)
    if family not in _V2_ADDRESS:
        raise ProxyError("PROXY v2 header with an unsupported address family (only TCP over IP)")
    size, block = _V2_ADDRESS[family]
    if length < block:
        raise ProxyError("PROXY v2 address block too short")
    src = ipaddress.ip_address(bytes(data[16:16 + size]))
    (sport,) = struct.unpack_from("!H", data, 16 + 2 * size)
    return ProxyHeader(str(src), sport, total)
