"""The DovecotService as a supervised part of the internal role: start refuses what must not run, a Dovecot
that dies is started again, a reload applies the configuration and a renewed certificate, stop ends it all.
A deployment of its own: these tests kill and reload Dovecot."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_kit import PASSWORD, ImapDeployment, LoopThread, free_port, set_toml, wait_for

from mailbastion.config import load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.imap.dovecot import DovecotService


@pytest.fixture(scope="module")
def own() -> Iterator[ImapDeployment]:
    with ImapDeployment.create() as deployment:
        deployment.add_account("svc@example.test")
        yield deployment


def _serial(d: ImapDeployment) -> int:
    conn = ssl.create_connection(("127.0.0.1", d.tls_port), timeout=30)
    with d.tls_context().wrap_socket(conn) as tls:
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number  # type: ignore[arg-type]


def test_a_dovecot_that_dies_is_started_again(own: ImapDeployment) -> None:
    service = own.service
    assert service is not None and service.proc is not None
    os.killpg(service.proc.pid, signal.SIGKILL)
    wait_for(lambda: service.restarts >= 1, 120, what="Dovecot started again")
    with own.imap_tls() as m:
        assert m.login("svc@example.test", PASSWORD)[0] == "OK"


def test_reload_applies_the_configuration_and_a_renewed_certificate(own: ImapDeployment) -> None:
    before = _serial(own)
    own.mb("tls", "renew", "--role", "gateway")
    own.config.write_text(set_toml(own.config.read_text(), "imap", "max_connections_per_user", "2"))
    new = load_settings(own.config)
    assert own.service is not None
    own.run(own.service.reload(new))
    wait_for(lambda: _serial(own) != before, 60, what="the renewed certificate served")
    sessions = []
    try:
        for _ in range(2):
            m = imaplib.IMAP4_SSL("127.0.0.1", own.tls_port, ssl_context=own.tls_context(), timeout=60)
            sessions.append(m)
            m.login("svc@example.test", PASSWORD)
        with own.imap_tls() as third, pytest.raises(imaplib.IMAP4.error, match="(?i)maximum number of connections"):
            third.login("svc@example.test", PASSWORD)
    finally:
        for m in sessions:
            m.logout()


def test_a_reload_dovecot_refuses_keeps_the_running_configuration(own: ImapDeployment) -> None:
    bad = load_settings(own.config).model_copy(update={"tls": own.settings.tls.model_copy(
        update={"cert": "tls/missing.crt"})})
    assert own.service is not None
    conf = own.service.layout.config.read_text()
    own.run(own.service.reload(bad))  # logged, never raised
    assert own.service.layout.config.read_text() == conf
    with own.imap_tls() as m:
        assert m.login("svc@example.test", PASSWORD)[0] == "OK"


def _start(d: ImapDeployment, **changes: str) -> None:
    text = d.config.read_text()
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition(".")
        text = set_toml(text, section, key, value)
    d.config.write_text(text)
    service = DovecotService(load_settings(d.config))
    loop = LoopThread()
    try:
        loop.run(service.start())
        loop.run(service.stop())
        pytest.fail("started")
    finally:
        loop.close()


def test_start_refuses_what_must_not_run(tmp_path: Path) -> None:
    d = ImapDeployment.create()
    try:
        busy = free_port()
        import socket

        with socket.socket() as holder:
            holder.bind(("127.0.0.1", busy))
            holder.listen()
            with pytest.raises(ConfigError, match="Dovecot exited at start"):
                _start(d, **{"imap.listen_tls": f'["127.0.0.1:{busy}"]'})
        with pytest.raises(ConfigError, match="imap.mail_user.*does not exist"):
            _start(d, **{"imap.mail_user": '"no-such-mail-user"'})
        with pytest.raises(ConfigError, match="tls.cert"):
            _start(d, **{"imap.mail_user": '"mailbastion"', "tls.cert": '"tls/none.crt"'})
    finally:
        import shutil

        shutil.rmtree(d.root.parent, ignore_errors=True)


def test_stop_ends_dovecot_and_every_session(tmp_path: Path) -> None:
    d = ImapDeployment.create()
    try:
        d.start()
        d.add_account("bye@example.test")
        m = imaplib.IMAP4_SSL("127.0.0.1", d.tls_port, ssl_context=d.tls_context(), timeout=60)
        m.login("bye@example.test", PASSWORD)
        assert d.service is not None and d.service.proc is not None
        pid = d.service.proc.pid
        d.stop()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            m.noop()
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/status").read_text().find("zombie") >= 0
        with pytest.raises(OSError):
            imaplib.IMAP4_SSL("127.0.0.1", d.tls_port, ssl_context=d.tls_context(), timeout=5)
    finally:
        d.stop()
        import shutil

        shutil.rmtree(d.root.parent, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running: not gone, and not a zombie left for its parent."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_a_cancelled_doveadm_call_leaves_no_process(own: ImapDeployment, tmp_path: Path) -> None:
    """stop() cancels the session guard, maybe while its `doveadm who` runs: that doveadm, and what it started, is
    killed and reaped before the call ends. Here a doveadm that does not answer yet: a script in front of the real
    one, which first waits for a process of its own that holds its output (as a slow helper would)."""
    assert own.service is not None
    assert own.run(own.service.who()) == set()  # the real doveadm answers through the same code
    pids = tmp_path / "pids"
    wrapper = tmp_path / "doveadm"
    wrapper.write_text(f"#!/bin/sh\nsleep 300 &\necho \"$$ $!\" > {pids}.new && mv {pids}.new {pids}\nwait\n"
                       f"exec {own.settings.imap.doveadm} \"$@\"\n", encoding="utf-8")
    wrapper.chmod(0o755)
    s = own.settings
    service = DovecotService(s.model_copy(update={"imap": s.imap.model_copy(update={"doveadm": str(wrapper)})}),
                             directory=own.directory)
    started: list[int] = []

    async def cancel_while_it_runs() -> None:
        call = asyncio.ensure_future(service.who())
        while not pids.exists():  # the condition, checked on each turn of the loop (the call runs meanwhile)
            assert not call.done(), call
            await asyncio.sleep(0.02)
        started.extend(int(p) for p in pids.read_text().split())
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    try:
        asyncio.run(cancel_while_it_runs())
        doveadm, helper = started
        assert not _alive(doveadm)  # killed and reaped before the call ended
        wait_for(lambda: not _alive(helper), 30, 0.05, "the process doveadm started to be killed with it")
    finally:
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
