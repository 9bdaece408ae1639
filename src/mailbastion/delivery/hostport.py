"""Next-hop addresses as configured: "host", "host:port", "[v6addr]:port" or "[host]"."""

from __future__ import annotations


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """"host", "host:port", "[v6addr]:port" or "[host]" -> (host, port). Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, int(port) if port else default_port
