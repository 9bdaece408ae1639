"""HELO/EHLO name sanity (RFC 5321 §4.1.1.1: a FQDN, or an address literal when there is none).

Symbols only, never a forced refusal: many legitimate but sloppy senders use odd names, so the
weights in scores.toml decide how much each oddity counts.

  HELO_BAD_SYNTAX        neither a domain name nor an address literal
  HELO_BARE_IP           an IP address without brackets (`1.2.3.4` instead of `[1.2.3.4]`)
  HELO_NOT_FQDN          a single label (`localhost`, `DESKTOP-1234`) or a numeric TLD
  HELO_LITERAL_MISMATCH  an address literal that is not the client's address
  HELO_FORGED_OURS       our own host name or one of our domains, from a client that may not relay
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar

from mailbastion.core.ports import RecipientResolver
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import CheckResult, Symbol
from mailbastion.policy.check import BaseCheck, CheckContext

__all__ = ["HeloCheck", "classify_helo"]

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # "_" is common in Windows host names


def _literal_ip(name: str) -> str | None:
    inner = name[1:-1]
    if inner.upper().startswith("IPV6:"):
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


def classify_helo(name: str) -> list[str]:
    """Symbol names for the syntax of `name` alone (no peer, no local knowledge)."""
    if name.startswith("[") and name.endswith("]"):
        return [] if _literal_ip(name) else ["HELO_BAD_SYNTAX"]
    if ":" in name or not name.strip("0123456789."):  # only these can be an address: skip two ValueErrors
        try:
            ipaddress.ip_address(name)
            return ["HELO_BARE_IP"]
        except ValueError:
            pass
    host = name.removesuffix(".")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return ["HELO_BAD_SYNTAX"]
    if len(labels) < 2 or labels[-1].isdigit():
        return ["HELO_NOT_FQDN"]
    return []


class HeloCheck(BaseCheck):
    name: ClassVar[str] = "helo"
    stage: ClassVar[Stage] = Stage.HELO
    emits: ClassVar[frozenset[str]] = frozenset(
        {"HELO_BAD_SYNTAX", "HELO_BARE_IP", "HELO_NOT_FQDN", "HELO_LITERAL_MISMATCH", "HELO_FORGED_OURS"}
    )
    priority: ClassVar[int] = 20
    timeout: ClassVar[float] = 2.0

    def __init__(self, our_hostname: str, recipients: RecipientResolver | None = None) -> None:
        self.our_hostname = our_hostname.lower().rstrip(".")
        self.recipients = recipients

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        name = ctx.peer.helo.strip()
        found = [Symbol(s, name[:100]) for s in classify_helo(name)]
        if name.startswith("[") and not found:
            literal = _literal_ip(name)
            if literal is not None and literal != ctx.peer.ip:
                found.append(Symbol("HELO_LITERAL_MISMATCH", f"{name} from {ctx.peer.ip}"))
        elif not found and not ctx.peer.may_relay and self._is_ours(name):
            found.append(Symbol("HELO_FORGED_OURS", name))
        return CheckResult(symbols=tuple(found))

    def _is_ours(self, name: str) -> bool:
        host = name.lower().rstrip(".")
        if host == self.our_hostname:
            return True
        return self.recipients is not None and self.recipients.is_local_domain(host)
