"""Measure 4: no open relay, and no SMTP smuggling, tried live on the MX listener.

Relay: the probe must come from outside `relay.networks`, not along a trusted path. On one host that means
a second loopback address (127.0.0.2 ...) as the source, which reaches a listener bound to loopback or to
the wildcard. A relay attempt (an outside recipient, and the `%`-hack through one of our domains) must be
refused with 5.7.1 at RCPT. When every loopback source is inside relay.networks: a listener bound to loopback
only is then open to everyone who can reach it (fail); a wildcard listener cannot be probed from here
(UNKNOWN, which fails: what is not proven is not passed).

Smuggling (CVE-2023-51764 and friends): end-of-data fakes (`\\n.\\n`, `\\n.\\r\\n`, `\\r\\n.\\n`) followed by a
second transaction. Each must be refused, or at least not split: after the real `\\r\\n.\\r\\n` and QUIT the
server may send exactly two replies (the message's and QUIT's); more means it ran the smuggled commands.
The message carries GTUBE, so that even a server that swallowed it whole would not deliver it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.board import MET, NOT_MET, UNKNOWN, MeasureResult
from mailbastion.measures.smtp_probe import MailTarget, SmtpDialogue, connect_host, parse_hostport
from mailbastion.measures.spam import GTUBE

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["LOOPBACK_SOURCES", "SMUGGLING_FAKES", "RelayProbe", "outside_source"]

LOOPBACK_SOURCES = ("127.0.0.2", "127.0.0.3", "127.1.2.3", "127.255.255.254")
SMUGGLING_FAKES = {"bare LF dot bare LF": b"\n.\n", "bare LF dot CRLF": b"\n.\r\n", "CRLF dot bare LF": b"\r\n.\n"}
OUTSIDE_RCPT = b"relay-probe@relay-probe.invalid"


def outside_source(settings: Settings) -> str | None:
    """A loopback address outside relay.networks to send from, or None."""
    nets = settings.relay.networks
    for candidate in LOOPBACK_SOURCES:
        ip = ipaddress.ip_address(candidate)
        if not any(ip.version == n.version and ip in n for n in nets):
            return candidate
    return None


def _relay_attempt(host: str, port: int, source: str, rcpt: bytes) -> tuple[bool, str]:
    """(refused with 5.7.1, evidence line)."""
    with SmtpDialogue(host, port, source=source) as s:
        s.hello()
        mail = s.command(b"MAIL FROM:<>")
        reply = s.command(b"RCPT TO:<" + rcpt + b">") if mail.startswith("2") else mail
        if reply.startswith("2"):
            s.command(b"RSET")  # accepted: send nothing on
        s.send(b"QUIT\r\n")
    ok = reply.startswith("5") and " 5.7.1 " in f" {reply[4:]} "
    return ok, f"from {source}, RCPT TO:<{rcpt.decode()}>: {reply}"


def _smuggle(target: MailTarget, name: str, fake: bytes) -> tuple[bool, str]:
    """(refused or not split, evidence line)."""
    header = (b"From: mailbastion audit <audit@audit-probe.invalid>\r\nSubject: audit: smuggling probe\r\n"
              b"Message-ID: <smuggle@audit-probe.invalid>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n")
    smuggled = (b"MAIL FROM:<>\r\nRCPT TO:<" + target.recipient.encode() + b">\r\nDATA\r\n"
                b"Subject: smuggled\r\n\r\n" + GTUBE + b"\r\n")
    with SmtpDialogue(target.host, target.port) as s:
        s.hello()
        for line in (b"MAIL FROM:<>", b"RCPT TO:<" + target.recipient.encode() + b">", b"DATA"):
            reply = s.command(line)
            if reply[:1] not in ("2", "3"):
                return False, f"{name}: could not start a message: {reply}"
        s.send(header + b"A smuggling probe by `mailbastion audit`.\r\n" + GTUBE + fake + smuggled + b"\r\n.\r\n")
        first = s.reply()
        s.send(b"QUIT\r\n")
        rest = s.replies_until_close()
    split = len(rest) > 1
    ok = first.startswith("5") or not split
    more = f" then {len(rest)} more replies: {' | '.join(rest[:4])}" if split else ""
    return ok, f"{name}: {first}{more}"


class RelayProbe:
    numbers: tuple[int, ...] = (4,)

    def __init__(self, settings: Settings, target: MailTarget | None, domain: str, why_not: str = "") -> None:
        self.settings = settings
        self.target = target
        self.domain = domain
        self.why_not = why_not

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:
        nets = ", ".join(map(str, self.settings.relay.networks)) or "(none)"
        lines = [f"relay.networks: {nets}"]
        if self.target is None:
            return MeasureResult(4, UNKNOWN, f"could not probe: {self.why_not}", tuple(lines),
                                 fix="run the audit on the host of the MX listener")
        bound, _ = parse_hostport(self.settings.smtp.listen[0])
        host = connect_host(bound)
        results: list[tuple[bool, str]] = []
        source = outside_source(self.settings)
        relay_probed = False
        addr = ipaddress.ip_address(host)
        if addr.version != 4 or not addr.is_loopback:
            lines.append(f"could not probe relaying: the listener is bound to {bound}, not reachable from a second "
                         "loopback address; probe from another host")
        elif source is None:
            lines.append("could not probe relaying: every loopback source address is inside relay.networks")
            if bound == host:  # bound to loopback itself, not the wildcard: only loopback clients exist
                return MeasureResult(4, NOT_MET, "open relay: every address that can reach the MX listener "
                                     f"({bound}) is inside relay.networks", tuple(lines), "mailbastion audit",
                                     fix="remove loopback networks from relay.networks (they are the only clients "
                                     "of a loopback listener)")
        else:
            relay_probed = True
            for rcpt in (OUTSIDE_RCPT, b'"relay-probe%relay-probe.invalid"@' + self.domain.encode()):
                results.append(_relay_attempt(host, self.target.port, source, rcpt))
        for name, fake in SMUGGLING_FAKES.items():
            results.append(_smuggle(self.target, name, fake))
        lines += [line for _, line in results]
        bad = [line for ok, line in results if not ok]
        if bad:
            return MeasureResult(4, NOT_MET, "relay or smuggling probe not refused: " + bad[0], tuple(lines),
                                 "mailbastion audit")
        if not relay_probed:
            return MeasureResult(4, UNKNOWN, "smuggling refused; relaying could not be probed from outside the "
                                 "relay networks", tuple(lines), "mailbastion audit",
                                 fix="probe relaying from a host outside relay.networks")
        return MeasureResult(4, MET, f"relaying from {source} refused with 5.7.1; smuggling refused", tuple(lines),
                             "mailbastion audit")
