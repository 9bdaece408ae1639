"""(A uniquely named module, not conftest, so test modules can import it.) The addresses of the forwarding
deployment that tests/forwarding/conftest.py builds."""

from __future__ import annotations

import sys
from email.utils import formatdate, make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "submission"))  # submission_world: the kit reused

from submission_world import DOMAIN, World, message

ERIN = f"erin@{DOMAIN}"  # sends mail that bounces (the hijack test); nobody else uses her
LEAVER = f"leaver@{DOMAIN}"
SUCCESSOR = "carol@remote.test"

def dsn(message_id: str, to: str = ERIN, rcpt: str = "bob@remote.test") -> bytes:
    """A DSN as Postfix writes it: multipart/report with delivery-status and the returned headers."""
    boundary = "dsn-boundary-7"
    return (f"From: MAILER-DAEMON@mx.remote.test (Mail Delivery System)\r\nTo: <{to}>\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain='mx.remote.test')}\r\nAuto-Submitted: auto-replied\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
            f" boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n<{rcpt}>: host said: 550 5.1.1 unknown user\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.remote.test\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Remote-MTA: dns; store.remote.test\r\nDiagnostic-Code: smtp; 550 5.1.1 unknown user\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: <{to}>\r\nTo: <{rcpt}>\r\nSubject: sent by erin\r\nMessage-ID: {message_id}\r\n\r\n"
            f"--{boundary}--\r\n").encode()


def send_noted(world: World, subject: str, count: int) -> list[str]:
    """Erin sends `count` messages with Message-IDs of our choosing (`subject` + " i"); each is waited for
    at the remote MX, so the gateway's sent log has them. Returns the Message-IDs."""
    ids = [make_msgid(domain=DOMAIN) for _ in range(count)]
    for i, message_id in enumerate(ids):
        raw = message(f"{subject} {i}", sender=ERIN).replace(b"Message-ID: <", b"X-Old-Id: <", 1)
        raw = raw.replace(b"\r\n\r\n", f"\r\nMessage-ID: {message_id}\r\n\r\n".encode(), 1)
        world.submit(raw, user=ERIN, sender=ERIN)
        world.wait_at_sink(lambda m, s=f"{subject} {i}": f"Subject: {s}".encode() in m.content)
    return ids


__all__ = ["ERIN", "LEAVER", "SUCCESSOR", "dsn", "send_noted"]
