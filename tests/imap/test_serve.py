"""Dovecot under the real `mailbastion serve` (all-in-one): a message delivered through the gateway (SMTP in,
spool, LMTP, our MDA) is read over IMAP; SIGHUP reloads Dovecot; SIGTERM stops it with the rest.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import signal
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_kit import need_dovecot, wait_for

from mailbastion.testing.deployment import Deployment, free_port, wait_port
from mailbastion.testing.dns_server import DnsTestServer

PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Deployment, int]]:
    need_dovecot()
    base = Path(tempfile.mkdtemp(prefix="mb-serve-", dir="/var/tmp"))
    os.chmod(base, 0o711)
    imaps = free_port()
    with DnsTestServer() as dns:
        d = Deployment(base / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("server", "workers"): "2", ("imap", "enabled"): "true",
            ("imap", "listen"): f'["127.0.0.1:{free_port()}"]', ("imap", "listen_tls"): f'["127.0.0.1:{imaps}"]'})
        d.init()
        d.mb("account", "add", "alice@example.test", "--password-stdin", input=PASSWORD + "\n")
        d.start()
        try:
            wait_port(imaps, 120, d.proc)
            yield d, imaps
        finally:
            d.stop()
            shutil.rmtree(base, ignore_errors=True)


def _cmd(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


def _imap(d: Deployment, port: int) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)


def test_mail_through_the_gateway_is_read_over_imap(served: tuple[Deployment, int]) -> None:
    d, port = served

    def masters() -> list[Path]:
        return [p for p in Path("/proc").glob("[0-9]*")
                if _cmd(p).split(b"\0")[0].endswith(b"/dovecot") and str(d.root).encode() in _cmd(p)]

    # One Dovecot master. A child it has just forked carries the master's command line until it names
    # itself (dovecot/imap-login ...): wait for a moment without one rather than count it as a second.
    wait_for(lambda: len(masters()) == 1, 60, what="exactly one Dovecot master")
    raw = (b"From: Bob <bob@outside.example>\r\nTo: alice@example.test\r\nSubject: through the gateway\r\n"
           b"Message-ID: <gw-1@outside.example>\r\n\r\nDelivered by SMTP, read by IMAP.\r\n")
    d.send("bob@outside.example", ["alice@example.test"], raw)
    d.wait_delivered("alice@example.test", 1)
    m = _imap(d, port)
    try:
        m.login("alice@example.test", PASSWORD)
        m.select("INBOX")
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        body = data[0][1]
        assert b"Subject: through the gateway" in body and b"Delivered by SMTP, read by IMAP." in body
        assert re.search(rb"^Received: ", body, re.MULTILINE)  # the gateway's trace field, above the sender's header
    finally:
        m.logout()


def test_sighup_reloads_dovecot_and_sigterm_stops_it(served: tuple[Deployment, int]) -> None:
    d, port = served
    assert d.proc is not None
    os.killpg(d.proc.pid, signal.SIGHUP)
    wait_for(lambda: "imap: Dovecot reloaded" in d.log(), 60, what="Dovecot reloaded on SIGHUP")
    m = _imap(d, port)
    m.login("alice@example.test", PASSWORD)
    m.logout()
    pid_file = d.root / "imap" / "run" / "master.pid"
    master = int(pid_file.read_text())
    assert d.stop() == 0
    assert not Path(f"/proc/{master}").exists()
    with pytest.raises(OSError):
        _imap(d, port)
