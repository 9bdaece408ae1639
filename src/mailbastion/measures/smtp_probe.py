"""A small SMTP client for the audit's live probes: raw bytes on the wire (a smuggling probe needs bare LFs
that smtplib would repair), an optional source address (a relay probe must come from outside the relay
networks), every reply kept as evidence. Blocking; the probes run it in a thread.

    target = MailTarget("127.0.0.1", 25, recipient="postmaster@example.org")
    seen = deliver_probe(target, raw)           # MAIL FROM:<> RCPT DATA; seen.refused, seen.text
    with SmtpDialogue(target.host, target.port, source="127.0.0.2") as s:
        s.command(b"EHLO audit-probe.invalid")

The probes use the null sender: no sender-domain check can refuse them before the check under test, and a
refusal can bounce to nobody. Raises OSError when the listener cannot be reached.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["HELO", "MailTarget", "Seen", "SmtpDialogue", "connect_host", "deliver_probe", "parse_hostport"]

HELO = b"audit-probe.mailbastion.invalid"
TIMEOUT = 60.0


def parse_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    return host.strip("[]"), int(port)


def connect_host(bound: str) -> str:
    """Where to connect to reach a listener bound to `bound` from this host (a wildcard: loopback)."""
    if bound in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if bound == "::":
        return "::1"
    return bound


@dataclass(frozen=True, slots=True)
class MailTarget:
    host: str
    port: int
    recipient: str  # one of our addresses (postmaster@ our first domain)
    source: str | None = None  # the local address to send from; None = the system's choice


@dataclass(frozen=True, slots=True)
class Seen:
    """What one probe transaction saw: the replies in order, and the last one."""

    replies: tuple[str, ...]

    @property
    def final(self) -> str:
        return self.replies[-1] if self.replies else ""

    @property
    def refused(self) -> bool:
        return self.final[:1] == "5"

    @property
    def text(self) -> str:
        return self.final or "(no reply)"


class SmtpDialogue:
    def __init__(self, host: str, port: int, *, source: str | None = None, timeout: float = TIMEOUT) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            if source is not None:
                self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.greeting = self.reply()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> str:
        """One (possibly multi-line, RFC 5321 §4.2.1) reply, its lines joined by " / "."""
        lines = [self._line()]
        while len(lines[-1]) > 3 and lines[-1][3:4] == b"-":
            lines.append(self._line())
        return " / ".join(x.decode("utf-8", "replace") for x in lines)

    def hello(self) -> str:
        """EHLO, then STARTTLS when offered (as a sending MTA would; a listener with smtp.require_starttls
        refuses MAIL without it) and EHLO again. The certificate is not verified: measure 9 inspects it."""
        reply = self.command(b"EHLO " + HELO)
        offered = reply.startswith("250") and "STARTTLS" in reply.upper()
        if offered and not isinstance(self.sock, ssl.SSLSocket) and self.command(b"STARTTLS").startswith("220"):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
            reply = self.command(b"EHLO " + HELO)
        return reply

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: bytes) -> str:
        self.send(line + b"\r\n")
        return self.reply()

    def replies_until_close(self, limit: int = 50) -> list[str]:
        """Every reply left before the server closes (after a QUIT): a split message shows as extra ones."""
        out: list[str] = []
        while len(out) < limit:
            try:
                out.append(self.reply())
            except (ConnectionError, TimeoutError, OSError):
                break
        return out


def dot_stuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency for lines that start with "." after a CRLF; bare LFs are left as they are
    (the smuggling probe sends them on purpose)."""
    body = raw.replace(b"\r\n.", b"\r\n..")
    return b"." + body if body.startswith(b".") else body


def deliver_probe(target: MailTarget, raw: bytes, *, sender: bytes = b"<>") -> Seen:
    """MAIL FROM:<> RCPT TO:<recipient> DATA raw; the replies up to the first refusal or the end of data."""
    replies: list[str] = []
    with SmtpDialogue(target.host, target.port, source=target.source) as s:
        replies.append(s.greeting)
        replies.append(s.hello())
        for line in (b"MAIL FROM:" + sender, b"RCPT TO:<" + target.recipient.encode() + b">", b"DATA"):
            replies.append(s.command(line))
            if replies[-1][:1] not in ("2", "3"):
                s.send(b"QUIT\r\n")
                return Seen(tuple(replies))
        body = dot_stuff(raw)
        s.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        replies.append(s.reply())
        s.send(b"QUIT\r\n")
    return Seen(tuple(replies))


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
