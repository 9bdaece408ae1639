"""Users read mail over IMAP from a real Dovecot: implicit TLS and STARTTLS, no login before TLS, our
directory deciding every login (main and app passwords, account states), throttling, folders, quota."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl

import pytest
from imap_kit import PASSWORD, ImapDeployment

from mailbastion.core.address import parse_address
from mailbastion.directory import AccountState
from mailbastion.directory.login import LOCKED_OUT
from mailbastion.tls_policy import MOZILLA_INTERMEDIATE_CIPHERS

MESSAGE = (b"From: Bob <bob@outside.example>\nTo: reader@example.test\nSubject: quarterly figures\n"
           b"Message-ID: <figures-1@outside.example>\n\nThe figures are attached in spirit.\n")


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _fetch_all(m: imaplib.IMAP4, folder: str = "INBOX") -> list[bytes]:
    typ, _ = m.select(folder)
    assert typ == "OK"
    typ, data = m.search(None, "ALL")
    out = []
    for num in data[0].split():
        typ, parts = m.fetch(num, "(BODY.PEEK[])")
        assert typ == "OK"
        out.append(parts[0][1])
    return out


def test_mail_written_by_the_mda_is_read_over_implicit_tls_and_starttls(imap: ImapDeployment) -> None:
    imap.add_account("reader@example.test")
    path = imap.deliver("reader@example.test", MESSAGE)
    assert path.stat().st_uid != 0  # the MDA (root) gave it to the mail user
    with imap.imap_tls() as m:
        assert m.login("reader@example.test", PASSWORD)[0] == "OK"
        assert _fetch_all(m) == [_crlf(MESSAGE)]
    with imap.imap_plain() as m:
        m.starttls(imap.tls_context())
        assert m.login("Reader@Example.Test", PASSWORD)[0] == "OK"  # the name is normalized by the directory
        assert _fetch_all(m) == [_crlf(MESSAGE)]


class _FromAddress(imaplib.IMAP4):
    """imaplib from another loopback source address: Dovecot then treats the connection like a remote one
    (from an address to itself it counts as 'secured', see below)."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=("127.0.0.2", 0))


def test_no_login_or_authenticate_before_starttls(imap: ImapDeployment) -> None:
    imap.add_account("plain@example.test")
    remote = _FromAddress("127.0.0.1", imap.plain_port, timeout=60)
    try:
        assert "LOGINDISABLED" in remote.capabilities and "STARTTLS" in remote.capabilities  # RFC 3501 §6.2.3
        with pytest.raises(imaplib.IMAP4.error):
            remote.login("plain@example.test", PASSWORD)
        with pytest.raises(imaplib.IMAP4.error):
            remote.authenticate("PLAIN", lambda _: b"\0plain@example.test\0" + PASSWORD.encode())
        remote.starttls(imap.tls_context())
        assert remote.login("plain@example.test", PASSWORD)[0] == "OK"
    finally:
        remote.logout()
    # From 127.0.0.1 to 127.0.0.1 Dovecot lets the password through in clear; our auth socket refuses it.
    with imap.imap_plain() as local:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            local.login("plain@example.test", PASSWORD)
        with pytest.raises(imaplib.IMAP4.error):
            local.authenticate("PLAIN", lambda _: b"\0plain@example.test\0" + PASSWORD.encode())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_policy_is_the_smtp_listeners_one(imap: ImapDeployment) -> None:
    old = imap.tls_context()
    old.minimum_version, old.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, OSError)):
        imaplib.IMAP4_SSL("127.0.0.1", imap.tls_port, ssl_context=old, timeout=30)
    weak = imap.tls_context()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:ECDHE-ECDSA-AES128-SHA")  # CBC suites: not in Mozilla intermediate
    with pytest.raises((ssl.SSLError, OSError)):
        imaplib.IMAP4_SSL("127.0.0.1", imap.tls_port, ssl_context=weak, timeout=30)
    # TLS 1.2 with the profile's suites, in the client's order (server_preferred_order: false).
    tls12 = imap.tls_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256")
    m = imaplib.IMAP4_SSL("127.0.0.1", imap.tls_port, ssl_context=tls12, timeout=30)
    try:
        assert m.sock.version() == "TLSv1.2" and m.sock.cipher()[0] == "ECDHE-ECDSA-CHACHA20-POLY1305"
        assert m.sock.cipher()[0] in MOZILLA_INTERMEDIATE_CIPHERS
    finally:
        m.shutdown()
    with imap.imap_tls() as m:
        assert m.sock.version() == "TLSv1.3"


def test_wrong_password_refused_then_the_account_locked_and_audited(imap: ImapDeployment) -> None:
    imap.add_account("target@example.test")
    for _ in range(3):  # max_failures_per_account = 3 in this session
        with imap.imap_tls() as m, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login("target@example.test", "not the password")
    with imap.imap_tls() as m, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("target@example.test", PASSWORD)  # locked out: the right password is refused too
    events = [e for e in imap.directory.audit.events(limit=100) if e.action == LOCKED_OUT]
    assert any(e.subject == "target@example.test" and e.details["service"] == "imap" for e in events)
    imap.add_account("bystander@example.test")
    with imap.imap_tls() as m:  # another account from the same client is not affected
        assert m.login("bystander@example.test", PASSWORD)[0] == "OK"


@pytest.mark.parametrize("state", [AccountState.PENDING, AccountState.SUSPENDED, AccountState.DISABLED])
def test_accounts_that_are_not_active_cannot_log_in(imap: ImapDeployment, state: AccountState) -> None:
    address = f"{state.value}-login@example.test"
    imap.add_account(address, state=state if state == AccountState.PENDING else AccountState.ACTIVE)
    if state != AccountState.PENDING:
        imap.directory.set_state(address, state, by="test", reason="test")
    with imap.imap_tls() as m, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(address, PASSWORD)


def test_app_passwords_log_in_until_revoked(imap: ImapDeployment) -> None:
    imap.add_account("devices@example.test")
    out = imap.mb("account", "app-password", "create", "devices@example.test", "--name", "phone").stdout
    secret = re.search(r"shown once.*: (\S+)", out).group(1)  # type: ignore[union-attr]
    with imap.imap_tls() as m:
        assert m.login("devices@example.test", secret)[0] == "OK"
    imap.mb("account", "app-password", "revoke", "devices@example.test", "--name", "phone")
    with imap.imap_tls() as m, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("devices@example.test", secret)


def test_special_use_folders_are_listed(imap: ImapDeployment) -> None:
    imap.mb("account", "add", "folders@example.test", "--password-stdin", input=PASSWORD + "\n")
    with imap.imap_tls() as m:
        m.login("folders@example.test", PASSWORD)
        typ, data = m._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")  # RFC 6154 §5.1
        assert typ == "OK"
        rows = m._untagged_response(typ, data, "LIST")[1]
    found = {}
    for row in rows:
        flags, _, name = re.match(rb'\(([^)]*)\) "(.)" (.+)', row).groups()  # type: ignore[union-attr]
        found[name.strip(b'"').decode()] = set(flags.decode().split())
    assert found.keys() == {"INBOX", "Junk", "Sent", "Drafts", "Trash", "Archive"}
    for name in ("Junk", "Sent", "Drafts", "Trash", "Archive"):
        assert f"\\{name}" in found[name]


def test_quota_reported_is_the_mdas(imap: ImapDeployment) -> None:
    imap.add_account("quota@example.test", quota_bytes=2 * 1024 * 1024)
    for i in range(3):
        imap.deliver("quota@example.test", MESSAGE + b"x" * (40_000 * (i + 1)) + b"\n")
    used = imap.store.usage(parse_address("quota@example.test"))
    with imap.imap_tls() as m:
        m.login("quota@example.test", PASSWORD)
        typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    storage = re.search(rb"STORAGE (\d+) (\d+)", data[1][0])
    assert storage is not None
    assert int(storage.group(2)) == 2 * 1024  # KiB (RFC 9208 §5)
    assert int(storage.group(1)) == -(-used // 1024)  # Dovecot rounds the bytes the MDA counted up to KiB
