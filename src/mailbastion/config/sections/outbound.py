"""Delivery to the Internet: the outbound TLS policy (DANE, MTA-STS, per-domain policy) and TLS-RPT.

    [outbound]
    dnssec_resolver = "127.0.0.1:5353"   # the site's DNSSEC-validating resolver (a local unbound); "" = no DANE
    ca_file = ""                         # CA bundle for MTA-STS (policy fetch and MX certificates) and
                                         # `verify`; "" = the system's
    mta_sts = true                       # apply RFC 8461 policies
    tls_rpt = true                       # record every session and send daily RFC 8460 reports

    [outbound.tls_policy]                # per destination domain: none | may | encrypt | verify
    "partner.example" = "verify"
    "legacy.example" = "may"

Strongest first: DANE, then MTA-STS, then this table, then REQUIRETLS, then opportunistic STARTTLS. A
weaker entry in the table never lowers a policy the destination publishes (DANE, MTA-STS enforce).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator

from mailbastion.config.sections.base import Section

LocalTlsMode = Literal["none", "may", "encrypt", "verify"]


def _domain(value: str) -> str:
    d = value.strip().lower().rstrip(".")
    try:
        d = d.encode("idna").decode("ascii") if not d.isascii() else d
    except UnicodeError:
        raise ValueError(f"{value!r} is not a domain name") from None
    if d.startswith("."):  # ".example.org": every subdomain, as in Postfix's policy table
        rest = d[1:]
    else:
        rest = d
    labels = rest.split(".")
    if len(labels) < 2 or not all(re.fullmatch(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", lbl) for lbl in labels):
        raise ValueError(f"{value!r} is not a domain name (write it as example.org, or .example.org for subdomains)")
    return d


def parse_resolver(text: str) -> tuple[str, int]:
    """"127.0.0.1:5353", "127.0.0.1" (port 53), "[::1]:5353" -> (address, port). Raises ValueError."""
    text = text.strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d+))?", text)
    if m:
        host, port = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    ip = ipaddress.ip_address(host)  # ValueError for a name: a resolver is given by address
    number = int(port) if port else 53
    if not 1 <= number <= 65535:
        raise ValueError(f"port {number} out of range")
    return str(ip), number


class OutboundSection(Section):
    # RFC 7672 §1.3: the AD bit means something only from a validating resolver reached over a trusted
    # path; so only the one named here is believed, and it must be on this host (loopback).
    dnssec_resolver: str = ""
    dnssec_timeout: float = Field(10.0, gt=0, le=60)
    ca_file: str = ""  # PEM bundle trusted for MTA-STS and `verify` (HTTPS policy fetch and MX certificates)
    mta_sts: bool = True
    mta_sts_cache_dir: str = "mta-sts"  # below data_dir: policies survive a restart (RFC 8461 §5.1)
    mta_sts_fetch_timeout: float = Field(30.0, gt=0, le=120)  # RFC 8461 §3.3: "at least a minute" is allowed
    mta_sts_max_policy_bytes: int = Field(65536, ge=1024, le=1048576)  # RFC 8461 §3.3: 64 KiB suggested
    mta_sts_max_age_cap: int = Field(31557600, ge=3600)  # RFC 8461 §3.2: max_age at most one year
    tls_policy: dict[str, LocalTlsMode] = Field(default_factory=dict)
    tls_rpt: bool = True
    tls_rpt_db: str = "tlsrpt.db"  # below data_dir
    tls_rpt_organization: str = ""  # organization-name in our reports; "" = server.hostname
    tls_rpt_contact: str = ""  # contact-info in our reports; "" = postmaster@<hostname's domain>
    tls_rpt_from: str = ""  # From of the report mails; "" = noreply-tls-reports@<server.hostname>
    tls_rpt_keep_days: int = Field(30, ge=2, le=400)  # recorded sessions older than this are pruned
    tls_rpt_post_timeout: float = Field(30.0, gt=0, le=300)
    # When the gateway sends the finished day's reports (UTC, HH:MM); a day missed while it was down is
    # sent at the next start. RFC 8460 §4.1: reports cover whole UTC days.
    tls_rpt_send_time: str = "00:30"

    @field_validator("tls_rpt_send_time")
    @classmethod
    def _send_time(cls, value: str) -> str:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
        if not m:
            raise ValueError(f"{value!r} is not a time of day HH:MM (UTC)")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    def send_time(self) -> tuple[int, int]:
        hour, minute = self.tls_rpt_send_time.split(":")
        return int(hour), int(minute)

    @field_validator("dnssec_resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        if not value.strip():
            return ""
        try:
            host, port = parse_resolver(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not ADDRESS[:PORT] ({exc})") from None
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{value!r} is not on this host: the AD bit crosses the network unauthenticated "
                             "(RFC 7672 §1.3), so run a validating resolver (unbound) on loopback")
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @field_validator("tls_policy")
    @classmethod
    def _policy(cls, value: dict[str, LocalTlsMode]) -> dict[str, LocalTlsMode]:
        return {_domain(k): v for k, v in value.items()}

    def weakened(self) -> list[str]:
        """Settings weaker than the secure defaults, for the `config.weakened` line at start-up."""
        out = []
        if not self.mta_sts:
            out.append("outbound.mta_sts = false (MTA-STS policies of destinations are ignored)")
        for domain, mode in sorted(self.tls_policy.items()):
            if mode == "none":
                out.append(f'outbound.tls_policy."{domain}" = "none" (no TLS even when offered)')
        return out


__all__ = ["LocalTlsMode", "OutboundSection", "parse_resolver"]
