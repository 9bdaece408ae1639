"""The internal link's addresses, as both hosts' rules need them (the push listener, the firewall)."""

from __future__ import annotations

import ipaddress
import socket
from ipaddress import IPv4Network, IPv6Network

from mailbastion.config import Settings
from mailbastion.config.sections.split import split_hostport
from mailbastion.core.errors import ConfigError

Network = IPv4Network | IPv6Network


def resolve_networks(host: str, key: str) -> list[Network]:
    """`host` as networks of one address each: itself when it is an address, else what it resolves to now.
    Raises ConfigError naming `key` when it does not resolve."""
    try:
        return [ipaddress.ip_network(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ConfigError(f"{host} does not resolve ({exc}): give an address", key=key) from None
    return sorted({ipaddress.ip_network(str(info[4][0])) for info in infos}, key=str)


def push_sources(settings: Settings) -> list[Network]:
    """Who may push the recipient map to this gateway: `map_push.allow`, else the MDA's host (lmtp.connect):
    the internal host pushes from the address the gateway delivers to."""
    if settings.map_push.allow:
        return list(settings.map_push.allow)
    host, _ = split_hostport(settings.lmtp.connect or settings.lmtp.listen)
    return resolve_networks(host, "map_push.allow")


__all__ = ["Network", "push_sources", "resolve_networks"]
