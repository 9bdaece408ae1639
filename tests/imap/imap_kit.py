"""A deployment with a real Dovecot for the IMAP tests: `mailbastion init` into a folder Dovecot's users can
reach, free loopback ports, and a DovecotService running in an event loop of its own thread (the tests
speak IMAP with imaplib, synchronously).

    with ImapDeployment.create(settings={("login", "max_failures_per_account"): "3"}) as d:
        d.add_account("alice@example.test", PASSWORD)
        d.deliver("alice@example.test", raw)               # our MDA's Maildir code
        with d.imap_tls() as m: m.login(...)                # implicit TLS;  d.imap_plain() + starttls()
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest

from mailbastion.config import load_settings
from mailbastion.config.schema import Settings
from mailbastion.config.toml_writer import dumps
from mailbastion.core.address import parse_address
from mailbastion.core.verdict import Folder
from mailbastion.directory import Directory
from mailbastion.imap.dovecot import DovecotService
from mailbastion.mailbox.maildir import MaildirStore

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
MAIL_USER = "mailbastion"


def free_port() -> int:
    from mailbastion.testing.deployment import free_port as shared

    return shared()  # never a port another helper of this run just handed out


def need_dovecot() -> None:
    """Skip (saying why) where Dovecot cannot run as the tests need: not installed, or not root."""
    if not Path("/usr/sbin/dovecot").exists() or not Path("/usr/lib/dovecot/modules/auth/libauthdb_lua.so").exists():
        pytest.skip("Dovecot is not installed (make test installs dovecot-imapd dovecot-auth-lua dovecot-sieve "
                    "lua-socket)")
    if os.geteuid() != 0:
        pytest.skip("the IMAP tests run Dovecot with a mail user of its own, which needs root")
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:  # what `make` does on a fresh machine
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", MAIL_USER], check=True)


def set_toml(text: str, section: str, key: str, value: str) -> str:
    data = tomllib.loads(text)
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = tomllib.loads(f"v = {value}")["v"]
    return dumps(data)


class LoopThread:
    """An event loop in a thread of its own, for services the synchronous tests drive."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="imap-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 180.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class ImapDeployment:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.directory = Directory.from_settings(settings)
        self.store = MaildirStore(settings.path(settings.mailbox.root),
                                  default_quota_bytes=settings.mailbox.default_quota_bytes,
                                  junk_folder=settings.mailbox.junk_folder)
        self.loop: LoopThread | None = None
        self.service: DovecotService | None = None

    @classmethod
    def create(cls, *, settings: dict[tuple[str, str], str] | None = None, domain: str = "example.test",
               base: Path | None = None) -> ImapDeployment:
        from mailbastion.apps.bootstrap import initialise

        need_dovecot()
        if base is None:
            # Dovecot's users must pass through every folder above the deployment: not pytest's 0700 tmp.
            base = Path(tempfile.mkdtemp(prefix="mb-imap-", dir="/var/tmp"))
            os.chmod(base, 0o711)
        root = base / "d"
        initialise(root, domain)
        config = root / "mailbastion.toml"
        text = config.read_text()
        values = {("imap", "listen"): f'["127.0.0.1:{free_port()}"]',
                  ("imap", "listen_tls"): f'["127.0.0.1:{free_port()}"]',
                  ("smtp", "listen"): f'["127.0.0.1:{free_port()}"]', ("lmtp", "listen"): f'"127.0.0.1:{free_port()}"',
                  ("login", "max_failures_per_client"): "1000", **(settings or {})}
        for (section, key), value in values.items():
            text = set_toml(text, section, key, value)
        config.write_text(text)
        return cls(root, load_settings(config))

    @property
    def config(self) -> Path:
        return self.root / "mailbastion.toml"

    @property
    def tls_port(self) -> int:
        return int(self.settings.imap.listen_tls[0].rpartition(":")[2])

    @property
    def plain_port(self) -> int:
        return int(self.settings.imap.listen[0].rpartition(":")[2])

    # -- the service ----------------------------------------------------------------------------------

    def start(self) -> list[str]:
        self.loop = LoopThread()
        self.service = DovecotService(self.settings, directory=self.directory)
        return self.loop.run(self.service.start())

    def stop(self) -> None:
        if self.loop is not None:
            if self.service is not None:
                self.loop.run(self.service.stop())
            self.loop.close()
            self.loop = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return self.loop.run(coro)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root.parent, ignore_errors=True)

    # -- accounts and mail ---------------------------------------------------------------------------

    def add_account(self, address: str, password: str = PASSWORD, **kwargs: Any) -> None:
        self.directory.add_account(address, password, by="test", **kwargs)

    def deliver(self, address: str, raw: bytes, *, junk: bool = False) -> Path:
        """Through the MDA's Maildir code, as the MDA (root) delivers."""
        addr = parse_address(address)
        return self.store.deliver(addr, raw, folder=Folder.JUNK if junk else Folder.INBOX,
                                  quota_bytes=self.directory.mailbox_quota(address))

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.root / "tls" / "ca.crt"))
        ctx.check_hostname = False  # the certificate names mail.example.test; we dial 127.0.0.1
        return ctx

    @contextlib.contextmanager
    def imap_tls(self) -> Iterator[imaplib.IMAP4_SSL]:
        m = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=self.tls_context(), timeout=60)
        try:
            yield m
        finally:
            with contextlib.suppress(Exception):
                m.logout()

    @contextlib.contextmanager
    def imap_plain(self) -> Iterator[imaplib.IMAP4]:
        m = imaplib.IMAP4("127.0.0.1", self.plain_port, timeout=60)
        try:
            yield m
        finally:
            with contextlib.suppress(Exception):
                m.logout()

    def mb(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """The real command line, in a process of its own (as an administrator runs it)."""
        import sys

        res = subprocess.run([sys.executable, "-m", "mailbastion", *args, "-c", str(self.config)], input=input,
                             capture_output=True, text=True, timeout=180, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"mailbastion {' '.join(args)}: {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res


def wait_for(predicate: Any, timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(interval)


__all__ = ["MAIL_USER", "PASSWORD", "ImapDeployment", "LoopThread", "free_port", "need_dovecot", "set_toml",
           "wait_for"]
