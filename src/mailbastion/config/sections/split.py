"""Sections of a split deployment: the recipient map push, the metrics endpoint, the firewall rules.

    [map_push]                          # internal host: where to push, how often
    gateways = ["10.77.0.1:2426"]       # every gateway's map_push.listen
    interval = 300                      # seconds: re-export and push even without a change
    [map_push]                          # gateway: where the internal host pushes, and the staleness alarm
    listen = "10.77.0.1:2426"
    max_age = 900                       # seconds: older than this logs recipient_map.stale

    [metrics]
    listen = "127.0.0.1:9325"           # Prometheus text format on GET /metrics; "" (the default) = off

    [firewall]                          # what `mailbastion firewall` adds besides the mail ports
    ssh_port = 22
    admin_from = ["192.0.2.0/28"]       # ssh and metrics from these only (empty: ssh from anywhere)
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network

from pydantic import Field, ValidationInfo, field_validator

from mailbastion.config.sections.base import Section


def split_hostport(text: str) -> tuple[str, int]:
    """`"10.0.0.1:2426"`, `"[fd00::1]:2426"`, `"gw.example.org:2426"` -> (host, port). Raises ValueError."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 10.0.0.1:2426 or [fd00::1]:2426), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # ValueError for a bracketed non-address
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets: [{host}]:{port}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MapPushSection(Section):
    """The recipient map travels from the internal host to the gateway over mutual TLS (apps/map_push.py).
    The internal host pushes after every directory change and every `interval` seconds; the gateway applies
    it atomically and logs `recipient_map.stale` while the map in service is older than `max_age`."""

    # -- the internal host's side --
    gateways: list[str] = []  # HOST:PORT of each gateway's push listener (map_push.listen there)
    interval: float = Field(300.0, ge=5, le=86400)  # re-export from the directory and push, change or not
    check_interval: float = Field(1.0, gt=0, le=60)  # how often the directory's change counter is read
    timeout: float = Field(30.0, gt=0, le=600)  # one push (connect, handshake, send, reply); both sides
    # -- the gateway's side --
    listen: str = ""  # HOST:PORT of the push listener on the link; "" = none
    allow: list[IPv4Network | IPv6Network] = []  # who may connect; empty = the host of lmtp.connect
    max_age: float = Field(900.0, ge=10)  # seconds; an older map in service is alarmed
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # a larger map is refused

    @field_validator("gateways")
    @classmethod
    def _gateways(cls, value: list[str]) -> list[str]:
        for item in value:
            split_hostport(item)
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            split_hostport(value)
        return value


class MetricsSection(Section):
    """The Prometheus endpoint (`GET /metrics`). Off by default; loopback only unless allow_remote."""

    allow_remote: bool = False  # declared before listen, whose check reads it; logged as config.weakened
    listen: str = ""  # "127.0.0.1:9325"; "" = no endpoint

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value
        host, _ = split_hostport(value)
        if not is_loopback(host) and not info.data.get("allow_remote", False):
            raise ValueError(f"{value} is not a loopback address: the metrics describe the mail flow and have no "
                             "authentication. Scrape through a local agent, or set metrics.allow_remote = true "
                             "and limit who reaches the port (firewall.admin_from)")
        return value


class FirewallSection(Section):
    """What `mailbastion firewall` lets in besides the mail ports the listeners name."""

    ssh_port: int = Field(22, ge=0, le=65535)  # 0: no ssh rule (console access only)
    admin_from: list[IPv4Network | IPv6Network] = []  # ssh and metrics from these; empty: ssh from anywhere
    clients: list[IPv4Network | IPv6Network] = []  # internal host: who reaches submission/IMAP/portal; empty: any


__all__ = ["FirewallSection", "MapPushSection", "MetricsSection", "is_loopback", "split_hostport"]
