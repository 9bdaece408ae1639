"""The web portal for administrators and users (served by the internal and all-in-one roles, never the gateway).

    [portal]
    enabled = true
    listen = "127.0.0.1:8443"              # HTTPS with the deployment's certificate ([tls] cert, key)
    public_url = ""                        # links in mail (enrolment, digest); "" = https://<server.hostname>:<port>
    session_idle_minutes = 30              # a session unused this long ends
    session_absolute_hours = 12            # and every session ends this long after sign-in
    login_max_failures = 5                 # failed sign-ins of one account within login_window_minutes ...
    login_window_minutes = 15
    lockout_minutes = 15                   # ... lock its portal sign-in this long (an audit entry)
    client_max_failures = 20               # failed sign-ins from one client address in the window: 429
    totp_roles = ["administrator", "helpdesk"]   # roles that must sign in with a TOTP code too
    enrol_link_hours = 72                  # lifetime of a one-time enrolment link
    digest_time = "07:00"                  # daily quarantine digest, UTC; "" = never (run `portal digest`)
    mta_sts_mode = "testing"               # the MTA-STS policy served at /.well-known/mta-sts.txt

Secure by default: HTTPS only (there is no plain-HTTP setting), administrators always need TOTP (a
`totp_roles` without "administrator" is refused), loopback listener until a site opens it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section

PortalRoleName = Literal["administrator", "helpdesk", "user"]


def parse_listen(value: str) -> tuple[str, int]:
    """"127.0.0.1:8443" or "[::1]:8443" -> (host, port). Raises ValueError."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)", value.strip()) or re.fullmatch(r"([^:\[\]]+):(\d+)",
                                                                                   value.strip())
    if not m:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)")
    host, port = m.group(1), int(m.group(2))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    ipaddress.ip_address(host)  # an address, not a name: what a listener binds must be unambiguous
    return host, port


class PortalSection(Section):
    enabled: bool = True
    listen: str = "127.0.0.1:8443"
    public_url: str = ""
    session_idle_minutes: int = Field(30, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(12, ge=1, le=7 * 24)
    login_max_failures: int = Field(5, ge=1, le=100)
    login_window_minutes: int = Field(15, ge=1, le=24 * 60)
    lockout_minutes: int = Field(15, ge=1, le=7 * 24 * 60)
    client_max_failures: int = Field(20, ge=1, le=10000)
    totp_roles: list[PortalRoleName] = ["administrator", "helpdesk"]
    enrol_link_hours: int = Field(72, ge=1, le=30 * 24)
    digest_time: str = "07:00"
    mta_sts_mode: Literal["testing", "enforce", "none"] = "testing"

    def base_url(self, hostname: str) -> str:
        """Where people reach the portal: `public_url`, else https://<hostname>:<listen port> (links in mail:
        enrolment, the digest, the pick-up of confidential mail)."""
        if self.public_url:
            return self.public_url
        _, port = parse_listen(self.listen)
        return f"https://{hostname}" + ("" if port == 443 else f":{port}")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.fullmatch(r"https://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/\-]*)?", value):
            raise ValueError(f"{value!r} is not an https:// URL (the portal is served over HTTPS only)")
        return value

    @field_validator("totp_roles")
    @classmethod
    def _admins_use_totp(cls, value: list[PortalRoleName]) -> list[PortalRoleName]:
        if "administrator" not in value:
            raise ValueError("administrators must sign in with TOTP: keep \"administrator\" in portal.totp_roles")
        return sorted(set(value))

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"{value!r} is not HH:MM (UTC), or \"\" for no daily digest")
        return value

    def weakened(self) -> list[str]:
        out = []
        host, _ = parse_listen(self.listen)
        if self.enabled and not ipaddress.ip_address(host).is_loopback:
            out.append(f"portal.listen = {self.listen!r} (reachable from the network)")
        if self.mta_sts_mode == "none":
            out.append('portal.mta_sts_mode = "none" (senders are told to stop applying our MTA-STS policy)')
        return out


__all__ = ["PortalRoleName", "PortalSection", "parse_listen"]
