"""The gateway's relay listener for the internal host: outbound mail in, over mutual TLS.

    [relay_in]
    listen = ["127.0.0.1:2526"]        # where the gateway takes outbound mail; [] = no relay listener
    connect = "gw.dmz.example:2526"    # where the internal host reaches it (default: the first listen)
    client_names = ["internal"]        # certificate names (CN) of our CA allowed to relay
    server_name = "gateway-link"       # the name the internal host expects in the listener's certificate

TLS from the first byte; a client certificate of our private CA (`tls.ca`) is required, and its name must
be one of `client_names`: nobody else may relay, whatever address it comes from. The listener presents
`tls.link_cert` (made by `init`, named "gateway-link"; the map push listener presents it too). Outbound checks (anti-virus, spam score) run here; a
message whose score reaches `refuse_action`'s threshold is refused and the administrator alarmed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


class RelayInSection(Section):
    listen: list[str] = []  # secure default: off (init writes 127.0.0.1:2526)
    connect: str | None = None  # where the internal host connects; None = the first listen address
    client_names: list[str] = ["internal"]
    server_name: str = "gateway-link"
    # The score action from which outbound mail is refused (554) and alarmed: "quarantine" (score 10 by
    # default) or "reject" (15). Below it the message is sent; no spam header is added to outgoing mail.
    refuse_action: Literal["quarantine", "reject"] = "quarantine"
    max_recipients: int = Field(1000, ge=1, le=100000)
    max_connections: int = Field(100, ge=1)
    idle_timeout: float = Field(300.0, gt=0)

    @field_validator("client_names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one certificate name must be allowed to relay (the internal role's)")
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"{name!r} is not a certificate name")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: list[str]) -> list[str]:
        for spec in value:
            _host, sep, port = spec.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"listen address must be HOST:PORT, got {spec!r}")
        return value

    def weakened(self) -> list[str]:
        """Settings weaker than the secure defaults, for the `config.weakened` line at start-up."""
        out = []
        if self.refuse_action == "reject":
            out.append('relay_in.refuse_action = "reject" (outbound mail scoring up to the reject threshold leaves)')
        others = sorted(set(self.client_names) - {"internal"})
        if others:
            out.append(f"relay_in.client_names also admits {', '.join(others)} (more certificates may relay)")
        return out

    def connect_address(self) -> str | None:
        """Where the internal host reaches the relay listener, or None when neither is set."""
        return self.connect or (self.listen[0] if self.listen else None)


__all__ = ["RelayInSection"]
