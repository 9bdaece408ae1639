"""(A uniquely named module, not conftest, so test modules can import it.) The addresses of the forwarding
deployment that tests/forwarding/conftest.py builds."""

from __future__ import annotations

import sys
from email.utils import formatdate, make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "submission"))  # submission_world: the kit reused

from submission_world import DOMAIN

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


__all__ = ["ERIN", "LEAVER", "SUCCESSOR", "dsn"]
