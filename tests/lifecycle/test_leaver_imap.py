"""A leaver's open IMAP session (Dovecot under the real `serve`) is closed when the end date passes with no
other change (only "now" moves, through the testing clock file), and the next login is refused."""

from __future__ import annotations

import datetime as dt
import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mailbastion.testing.deployment import Deployment, free_port, wait_port
from mailbastion.testing.dns_server import DnsTestServer

PASSWORD = "Correct-Horse-Battery-9"
MAIL_USER = "mailbastion"  # [imap] mail_user by default


def need_dovecot() -> None:
    """As tests/imap/imap_kit.py: skip where Dovecot cannot run as the test needs."""
    if not Path("/usr/sbin/dovecot").exists() or not Path("/usr/lib/dovecot/modules/auth/libauthdb_lua.so").exists():
        pytest.skip("Dovecot is not installed (make test installs dovecot-imapd dovecot-auth-lua lua-socket)")
    if os.geteuid() != 0:
        pytest.skip("Dovecot runs with a mail user of its own here, which needs root")
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", MAIL_USER], check=True)


def test_the_end_date_closes_the_open_imap_session_and_refuses_the_next_login() -> None:
    need_dovecot()
    base = Path(tempfile.mkdtemp(prefix="mb-leaver-", dir="/var/tmp"))
    os.chmod(base, 0o711)
    imaps = free_port()
    try:
        with DnsTestServer() as dns:
            d = Deployment(base / "d", dns=dns, settings={
                ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
                ("imap", "enabled"): "true", ("imap", "kick_interval_seconds"): "2",
                ("imap", "listen"): f'["127.0.0.1:{free_port()}"]', ("imap", "listen_tls"): f'["127.0.0.1:{imaps}"]',
                ("lifecycle", "check_interval_seconds"): "2",
                ("lifecycle", "testing_clock_offset_file"): '"clock-offset"'})
            d.init()
            d.mb("account", "add", "bob@example.test", "--password-stdin", input=PASSWORD + "\n")
            d.start()
            try:
                wait_port(imaps, 120, d.proc)
                ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
                ctx.check_hostname = False
                session = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=60)
                session.login("bob@example.test", PASSWORD)
                session.select("INBOX")
                tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
                d.mb("account", "leave", "bob@example.test", "--on", tomorrow.isoformat(), "--reason", "HR-9")
                assert session.noop()[0] == "OK"  # a date in the future changes nothing yet
                (d.root / "clock-offset").write_text(str(86400 + 1))
                deadline = time.monotonic() + 60
                while True:  # the session guard kicks it within its interval
                    try:
                        session.noop()
                    except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
                        break
                    assert time.monotonic() < deadline, "the leaver's IMAP session is still open after 60s"
                    time.sleep(0.5)
                again = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=60)
                with pytest.raises(imaplib.IMAP4.error):
                    again.login("bob@example.test", PASSWORD)
                again.logout()
                assert "imap.kick user=bob@example.test" in d.log()
            finally:
                d.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
