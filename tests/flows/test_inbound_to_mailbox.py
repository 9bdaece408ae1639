"""A message from outside reaches the right Maildir through gateway → spool → LMTP (mutual TLS) → MDA."""

import smtplib
import socket
import ssl
import time

import pytest
from flow_messages import business_message

from mailbastion.testing.deployment import Deployment


def _normalise(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _original_part(delivered: bytes, original: bytes) -> bytes:
    """The delivered message must end with the original, byte for byte (line ends aside)."""
    d, o = _normalise(delivered), _normalise(original)
    assert d.endswith(o), "the original message was altered"
    added = d[: len(d) - len(o)]
    return added


def test_single_recipient_byte_for_byte(deployment: Deployment) -> None:
    msg = business_message(n=1)
    refused = deployment.send("carol@partner.example", ["alice@example.test"], msg, tls=True)
    assert refused == {}
    got = deployment.wait_delivered("alice@example.test", 1)
    added = _original_part(got[-1], msg).decode()
    # Only header fields are added on top, and the Received one records the TLS session.
    assert added.endswith("\n") and "\n\n" not in added
    received = [line for line in added.split("\n") if line.startswith("Received:")]
    assert received, added
    assert "TLSv1.3" in added or "TLSv1.2" in added
    assert "X-Mailbastion-Junk" not in added  # internal header never reaches the mailbox
    assert "X-Spam-Status: Yes" not in added  # ordinary business mail is not marked as spam out of the box


def test_many_and_aliased_recipients(deployment: Deployment) -> None:
    before = {a: len(deployment.delivered(a)) for a in ("alice@example.test", "bob@example.test")}
    msg = business_message(to="sales@example.test", n=2)
    assert deployment.send("carol@partner.example", ["sales@example.test", "Bob+Projects@Example.TEST"], msg) == {}
    # alias → alice and bob; the plus-address is bob again: one copy per mailbox, as Postfix does
    alice = deployment.wait_delivered("alice@example.test", before["alice@example.test"] + 1)
    bob = deployment.wait_delivered("bob@example.test", before["bob@example.test"] + 1)
    assert _normalise(alice[-1]).endswith(_normalise(msg))
    assert _normalise(bob[-1]).endswith(_normalise(msg))
    time.sleep(1.0)
    assert len(deployment.delivered("bob@example.test")) == before["bob@example.test"] + 1


@pytest.mark.parametrize(
    "rcpt, code",
    [
        ("someone@elsewhere.example", 550),  # plain relay attempt
        ("someone%elsewhere.example@example.test", 550),  # percent hack
        ("elsewhere.example!someone@example.test", 550),  # bang path
        ('"someone@elsewhere.example"@example.test', 550),  # quoted @
        ("@example.test:someone@elsewhere.example", 501),  # source route
        ("someone@elsewhere.example@example.test", 501),  # a@b@c
        ("alice@[127.0.0.1]", 550),  # address literal
        ("alice@example.test.", 501),  # trailing dot
        ("nobody@example.test", 550),  # unknown local user
    ],
)
def test_refused_recipients_leave_nothing_behind(deployment: Deployment, rcpt: str, code: int) -> None:
    before = set(deployment.spool_files())
    with deployment.smtp() as s:
        s.mail("carol@partner.example")
        got, text = s.docmd(f"RCPT TO:<{rcpt}>")
        assert got == code, text
        assert s.docmd("DATA")[0] == 503  # no valid recipient: no transaction
    time.sleep(0.3)
    assert set(deployment.spool_files()) - before == set()


def test_local_sender_cannot_relay_to_foreign_recipient(deployment: Deployment) -> None:
    with deployment.smtp() as s:
        s.mail("alice@example.test")
        code, _ = s.docmd("RCPT TO:<victim@elsewhere.example>")
        assert code == 550


def test_mixed_case_local_domain_is_local_not_relay(deployment: Deployment) -> None:
    with deployment.smtp() as s:
        s.mail("carol@partner.example")
        assert s.docmd("RCPT TO:<ALICE@EXAMPLE.TEST>")[0] == 250


def test_leaver_is_refused_from_deactivation(deployment: Deployment) -> None:
    with deployment.smtp() as s:
        s.mail("carol@partner.example")
        assert s.docmd("RCPT TO:<leaver@example.test>")[0] == 250
        s.rset()
    deployment.mb("account", "deactivate", "leaver@example.test", "--reason", "leaver 2026-11")
    deadline = time.monotonic() + 10
    while True:
        with deployment.smtp() as s:
            s.mail("carol@partner.example")
            code, text = s.docmd("RCPT TO:<leaver@example.test>")
        if code != 250 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert code == 550 and b"5.1.1" in text  # refused exactly like an unknown user
    verify = deployment.mb("audit-log", "verify")
    assert "intact" in verify


def test_oversized_message_refused_and_not_spooled(deployment: Deployment) -> None:
    before = set(deployment.spool_files())
    with deployment.smtp() as s:
        code, _ = s.docmd("MAIL FROM:<carol@partner.example> SIZE=999999999")
        assert code == 552
    time.sleep(0.2)
    assert set(deployment.spool_files()) - before == set()


def test_mda_refuses_a_tls_client_without_role_certificate(deployment: Deployment) -> None:
    ctx = ssl.create_default_context(cafile=str(deployment.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", deployment.lmtp_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="mda") as tls:
                tls.sendall(b"LHLO test\r\n")
                data = tls.recv(1024)  # TLS 1.3: the refusal arrives with the first read
                if not data:
                    raise ConnectionResetError("closed")
    # and plain text gets nowhere either
    with socket.create_connection(("127.0.0.1", deployment.lmtp_port), timeout=10) as raw:
        raw.sendall(b"LHLO test\r\n")
        raw.settimeout(5)
        try:
            data = raw.recv(1024)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert not data.startswith(b"220")


def test_smtp_client_sees_no_traceback_on_garbage(deployment: Deployment) -> None:
    with socket.create_connection(("127.0.0.1", deployment.smtp_port), timeout=10) as s:
        s.recv(1024)
        s.sendall(b"EHLO x.example\r\nMAIL FROM:<<<>>>\r\nRCPT TO:\r\n\xff\xfe\x00garbage\r\nQUIT\r\n")
        time.sleep(0.5)
        data = s.recv(65536).decode("latin-1")
    assert "Traceback" not in data and "501" in data
    assert "Traceback" not in deployment.log()


def test_smtplib_roundtrip_with_starttls_required_ciphers(deployment: Deployment) -> None:
    ctx = ssl.create_default_context(cafile=str(deployment.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with smtplib.SMTP("127.0.0.1", deployment.smtp_port, timeout=10) as s:
        s.ehlo("mx.outside.example")
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError)):
            s.starttls(context=ctx)  # TLS 1.1 and older are refused
