"""A raw-socket SMTP client for tests: sends exactly the bytes it is given, reads whole replies.

    async with await SmtpDialogue.open("127.0.0.1", port) as d:
        assert d.greeting.code == 220
        r = await d.cmd("EHLO client.example.org")     # one command, one (multi-line) reply
        await d.starttls(ctx)                            # 220, then the TLS handshake
        await d.send(b"MAIL FROM:<a@b.example>\\r\\nRCPT TO:<c@d.example>\\r\\n")   # pipelined
        replies = [await d.read_reply() for _ in range(2)]
        await d.bdat(b"Subject: x\\r\\n\\r\\nbody\\r\\n", last=True)   # CHUNKING (RFC 3030)

Nothing is normalised: line ends, dots and bare CR/LF go out as given, which is what the smuggling
and limit tests need. Every read has a timeout so a silent server fails the test instead of hanging.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["SmtpDialogue", "SmtpResponse"]


@dataclass(frozen=True, slots=True)
class SmtpResponse:
    code: int
    lines: tuple[str, ...]  # text after "NNN-" / "NNN "

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def status(self) -> str:
        """The enhanced status code of the last line (RFC 3463), or ""."""
        first = self.lines[-1].split(" ", 1)[0] if self.lines else ""
        parts = first.split(".")
        return first if len(parts) == 3 and all(p.isdigit() for p in parts) else ""

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class SmtpDialogue:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.greeting: SmtpResponse | None = None

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float = 10.0, read_greeting: bool = True,
                   preamble: bytes = b"", ssl_context: ssl.SSLContext | None = None) -> SmtpDialogue:
        """Connect; send `preamble` first (a PROXY header), then read the greeting unless told not to."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context, limit=1 << 20), timeout)
        d = cls(reader, writer, timeout)
        if preamble:
            await d.send(preamble)
        if read_greeting:
            d.greeting = await d.read_reply()
        return d

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_reply(self) -> SmtpResponse:
        """One reply, all its lines. Raises ConnectionError if the server closed first."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if not raw:
                raise ConnectionError(f"connection closed by server after {lines!r}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            code, sep, text = line[:3], line[3:4], line[4:]
            lines.append(text)
            if sep != "-":
                return SmtpResponse(int(code), tuple(lines))

    async def cmd(self, line: str | bytes) -> SmtpResponse:
        """Send one command (CRLF added) and read its reply."""
        data = line.encode("utf-8") if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        return await self.read_reply()

    async def data(self, body: bytes) -> SmtpResponse:
        """DATA with `body` sent as is (dot-stuff and terminate it yourself, or use `message`)."""
        r = await self.cmd("DATA")
        if r.code != 354:
            return r
        await self.send(body)
        return await self.read_reply()

    async def message(self, content: bytes) -> SmtpResponse:
        """DATA with correct CRLF dot-stuffing and terminator."""
        lines = content.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        stuffed = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
        return await self.data(stuffed + b".\r\n")

    async def bdat(self, chunk: bytes, *, last: bool = False) -> SmtpResponse:
        """One BDAT chunk (RFC 3030): the command and exactly `chunk`, then its reply (the first of
        them, for LMTP's per-recipient replies after LAST)."""
        await self.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
        return await self.read_reply()

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None = None) -> SmtpResponse:
        r = await self.cmd("STARTTLS")
        if r.code == 220:
            await asyncio.wait_for(self.writer.start_tls(context, server_hostname=server_hostname), self.timeout)
        return r

    @property
    def tls_version(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        return obj.version() if obj is not None else None

    async def is_closed(self, wait: float = 2.0) -> bool:
        """True when the server closes the connection within `wait` seconds (EOF)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), wait)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
