"""Accounts over time against a running deployment (`serve` as a child process, SMTP to the real gateway
listener, the loopback DNS server) and the real command line. "Now" is moved for the server and the
command line alike through `[lifecycle] testing_clock_offset_file` (the testing aid of core/clock.py):
nothing else changes when the end date passes, yet the gateway refuses the leaver's address naming the
successor within one scheduler interval; then the mailbox is archived (checksum verified), deleted, and
the address reserved until its date."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from mailbastion.config import load_settings
from mailbastion.directory.login import LoginOutcome
from mailbastion.directory.store import Directory
from mailbastion.lifecycle.archive import verify_archive
from mailbastion.testing.deployment import MB, Deployment
from mailbastion.testing.dns_server import DnsTestServer

PASSWORD = "Correct-Horse-Battery-9"
DAY = 86400.0
INTERVAL = 2.0  # [lifecycle] check_interval_seconds here (60 by default)


def message(to: str, subject: str) -> bytes:
    return (f"From: <partner@outside.example>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain='outside.example')}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nThe contract draft, as discussed.\r\n").encode()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("lifecycle")
    with DnsTestServer() as dns:
        d = Deployment(root, dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("lifecycle", "check_interval_seconds"): str(INTERVAL),
            ("lifecycle", "testing_clock_offset_file"): '"clock-offset"',
            ("lifecycle", "archive_after_days"): "30", ("lifecycle", "retention_days"): "365",
            ("lifecycle", "reserve_days"): "90"})
        d.init()
        for user in ("bob", "carol"):
            d.mb("account", "add", f"{user}@example.test", "--password-stdin", input=f"{PASSWORD}\n")
        d.mb("account", "alias", "add", "sales@example.test", "bob@example.test")
        d.start()
        yield d
        d.stop()


def cli(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MB, *args, "-c", str(d.config)], capture_output=True, text=True, timeout=120, check=False)


def shift(d: Deployment, seconds: float) -> None:
    """Move "now" for the server and the command line (a testing aid; read at every clock call)."""
    f = d.root / "clock-offset"
    before = float(f.read_text()) if f.exists() else 0.0
    f.write_text(str(before + seconds))


def rcpt(d: Deployment, to: str) -> tuple[int, str]:
    with d.smtp() as s:
        s.mail("partner@outside.example")
        code, text = s.rcpt(to)
        return code, text.decode(errors="replace")


def wait_for(what: str, condition: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.2)


def directory(d: Deployment) -> Directory:
    return Directory.from_settings(load_settings(d.config))


def test_a_leaver_is_refused_on_time_then_archived_deleted_and_reserved(deployment: Deployment) -> None:
    d = deployment
    d.send("partner@outside.example", ["bob@example.test"], message("bob@example.test", "before leaving"))
    d.wait_delivered("bob@example.test", 1)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
    out = cli(d, "account", "leave", "bob@example.test", "--on", tomorrow.isoformat(), "--successor",
              "carol@example.test", "--reason", "HR-1234")
    assert out.returncode == 0 and "leaves on" in out.stdout and "naming carol@example.test" in out.stdout, out
    assert rcpt(d, "bob@example.test")[0] == 250  # not yet
    assert directory(d).verify_login("bob@example.test", PASSWORD).ok

    # the end date passes, with no change to the directory: only time moves
    shift(d, DAY + 1)

    def refused() -> tuple[int, str] | None:
        code, text = rcpt(d, "bob@example.test")
        return (code, text) if code != 250 else None

    code, text = wait_for("the gateway refuses the leaver", refused, 60.0)  # type: ignore[misc]
    assert code == 550 and text.startswith("5.1.1") and "<carol@example.test>" in text, (code, text)
    result = directory(d).verify_login("bob@example.test", PASSWORD)
    assert not result.ok and result.outcome is LoginOutcome.INACTIVE
    # the scheduler records the leave (the refusal may come first: a map written after the date passed
    # leaves the address out whoever writes it) and re-points the alias that pointed at the leaver
    left = wait_for("the leave is recorded", lambda: next((e for e in directory(d).audit.events(
        20, subject="bob@example.test") if e.action == "account.left"), None), 60.0)
    assert left.actor == "lifecycle" and left.reason == "end date reached"  # type: ignore[attr-defined]
    assert left.details["aliases_repointed"] == ["sales@example.test"]  # type: ignore[attr-defined]
    show = cli(d, "account", "show", "bob@example.test").stdout
    assert "state          left" in show and "successor      carol@example.test" in show
    wait_for("the alias reaches the successor", lambda: rcpt(d, "sales@example.test")[0] == 250, 60.0)
    d.send("partner@outside.example", ["sales@example.test"], message("sales@example.test", "for sales"))
    assert any(b"for sales" in m for m in d.wait_delivered("carol@example.test", 1))

    # 30 days later: the mailbox is exported, verified and removed
    box = d.maildir("bob@example.test")
    assert box.exists()
    shift(d, 30 * DAY)
    wait_for("the mailbox is archived", lambda: "state          archived" in cli(d, "account", "show",
                                                                                  "bob@example.test").stdout, 60.0)
    (tar,) = (d.root / "archive").glob("bob@example.test-*.tar.gz")
    digest = verify_archive(tar)
    assert subprocess.run(["sha256sum", "-c", tar.name + ".sha256"], cwd=tar.parent, capture_output=True, check=False).returncode == 0
    assert digest in (tar.parent / (tar.name + ".sha256")).read_text()
    assert not box.exists()
    import tarfile

    with tarfile.open(tar) as t:
        mails = [t.extractfile(m).read() for m in t.getmembers() if m.isfile() and "/new/" in m.name]  # type: ignore[union-attr]
    assert any(b"before leaving" in m for m in mails)

    # a year later: the archive is deleted with the account; the address stays reserved for 90 days
    shift(d, 365 * DAY)
    wait_for("the account is deleted", lambda: "state          deleted" in cli(d, "account", "show",
                                                                                 "bob@example.test").stdout, 60.0)
    assert not tar.exists()
    show = cli(d, "account", "show", "bob@example.test").stdout
    until = re.search(r"reserved until (\d{4}-\d\d-\d\d)", show)
    assert until is not None, show
    again = subprocess.run([*MB, "account", "add", "bob@example.test", "--password-stdin", "-c", str(d.config)],
                           capture_output=True, text=True, input=f"{PASSWORD}\n", timeout=120, check=False)
    assert again.returncode == 1 and f"reserved until {until.group(1)}" in again.stderr, again
    assert again.stderr.count("\n") == 1  # one line, no traceback
    shift(d, 91 * DAY)
    again = subprocess.run([*MB, "account", "add", "bob@example.test", "--password-stdin", "-c", str(d.config)],
                           capture_output=True, text=True, input=f"{PASSWORD}\n", timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    wait_for("the new bob receives", lambda: rcpt(d, "bob@example.test")[0] == 250, 60.0)
