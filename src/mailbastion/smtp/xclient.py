"""Postfix XCLIENT (https://www.postfix.org/XCLIENT_README.html), parsed into a value.

A trusted front end (a proxy, a load generator) uses XCLIENT to tell us who the real client is:

    XCLIENT ADDR=192.0.2.7 NAME=mx.example.org HELO=mx.example.org PROTO=ESMTP

Values are xtext (RFC 3461 §4: `+XX` hex escapes); `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean "no
value". The edge accepts XCLIENT only from `smtp.xclient_hosts`; this module only parses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["XCLIENT_ATTRS", "XclientError", "XclientRequest", "parse_xclient"]

XCLIENT_ATTRS = ("NAME", "ADDR", "PORT", "HELO", "PROTO")
_UNAVAILABLE = {"[UNAVAILABLE]", "[TEMPUNAVAIL]"}
_XTEXT_ESCAPE = re.compile(r"\+([0-9A-F]{2})")
_HOSTNAME = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,255}$")


class XclientError(ValueError):
    """An XCLIENT argument that is not understood; the edge answers 501 5.5.4."""


@dataclass(frozen=True, slots=True)
class XclientRequest:
    addr: str | None = None
    name: str | None = None
    port: int | None = None
    helo: str | None = None
    proto: str | None = None  # "SMTP" or "ESMTP"


def _xtext_decode(value: str) -> str:
    if "+" in value and not _XTEXT_ESCAPE.search(value):
        raise XclientError("malformed xtext")
    return _XTEXT_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def parse_xclient(arg: str) -> XclientRequest:
    """Parse `ATTR=value ...`. Raises XclientError for unknown attributes or bad values."""
    fields: dict[str, str | None] = {}
    if not arg or not arg.strip():
        raise XclientError("XCLIENT needs at least one attribute")
    for item in arg.split():
        name, eq, raw = item.partition("=")
        name = name.upper()
        if not eq or name not in XCLIENT_ATTRS:
            raise XclientError(f"unknown XCLIENT attribute {name!r}")
        value = _xtext_decode(raw)
        fields[name] = None if value.upper() in _UNAVAILABLE else value
    addr = fields.get("ADDR")
    if addr is not None:
        if addr.upper().startswith("IPV6:"):
            addr = addr[5:]
        try:
            addr = str(ipaddress.ip_address(addr))
        except ValueError:
            raise XclientError("ADDR is not an IP address") from None
    port = fields.get("PORT")
    port_num: int | None = None
    if port is not None:
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise XclientError("PORT is not a port number")
        port_num = int(port)
    for key in ("NAME", "HELO"):
        name_value = fields.get(key)
        if name_value is not None and not _HOSTNAME.match(name_value):
            raise XclientError(f"{key} is not a host name")
    proto = fields.get("PROTO")
    if proto is not None and proto.upper() not in ("SMTP", "ESMTP"):
        raise XclientError("PROTO must be SMTP or ESMTP")
    return XclientRequest(
        addr=addr,
        name=fields.get("NAME"),
        port=port_num,
        helo=fields.get("HELO"),
        proto=proto.upper() if proto else None,
    )
