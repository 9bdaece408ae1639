"""Helpers for the MDA tests: settings for a loopback MDA, TLS client contexts, and a plain LMTP client.

(A uniquely named module rather than `conftest`: several test folders have a conftest, and `import conftest`
would pick whichever was imported first.)
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

from mailbastion.config.schema import Settings
from mailbastion.directory import Directory
from mailbastion.mailbox.lmtp_server import MdaServer


@dataclass
class Mda:
    server: MdaServer
    directory: Directory
    mail: Path
    pki: dict[str, Path]
    port: int


def lmtp_settings(tmp_path: Path, pki: dict[str, Path], **lmtp: object) -> Settings:
    return Settings.model_validate({
        "server": {"hostname": "mda.test", "data_dir": str(tmp_path)},
        "tls": {"ca": str(pki["ca.crt"]), "mda_cert": str(pki["mda.crt"]), "mda_key": str(pki["mda.key"])},
        "lmtp": {"listen": "127.0.0.1:0", **lmtp},
        "directory": {"url": f"sqlite:///{tmp_path / 'directory.db'}", "recipient_map": str(tmp_path / "map.json")},
        "mailbox": {"root": str(tmp_path / "mail"), "default_quota_bytes": 1024 * 1024},
    })


def client_context(pki: dict[str, Path], *, cert: bool = True, cert_from: dict[str, Path] | None = None
                   ) -> ssl.SSLContext:
    from mailbastion.tls_policy import client_context as make

    source = cert_from or pki
    if not cert:
        return make(ca=pki["ca.crt"])
    return make(ca=pki["ca.crt"], cert=source["gateway-client.crt"], key=source["gateway-client.key"])


class Lmtp:
    """A plain LMTP client over implicit TLS that returns every reply line, for exact assertions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, ctx: ssl.SSLContext) -> Lmtp:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 10)
        client = cls(reader, writer)
        greeting = await client.reply()
        assert greeting.startswith("220"), greeting
        return client

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def cmd(self, text: str) -> str:
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def data(self, message: bytes, n_replies: int) -> list[str]:
        assert (await self.cmd("DATA")).startswith("354")
        body = b"".join(b"." + ln if ln.startswith(b".") else ln for ln in message.splitlines(keepends=True))
        self.writer.write(body + b".\r\n")
        await self.writer.drain()
        return [await self.reply() for _ in range(n_replies)]

    async def close(self) -> None:
        try:
            await self.cmd("QUIT")
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        self.writer.close()
