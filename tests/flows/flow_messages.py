"""Ordinary messages for flow tests: what a business correspondent would send."""

from email.utils import formatdate, make_msgid


def business_message(sender: str = "carol@partner.example", to: str = "alice@example.test", *,
                     subject: str = "Minutes of Tuesday's project meeting", n: int = 0) -> bytes:
    body = (
        "Hello Alice,\r\n\r\n"
        "please find below the minutes of our meeting on Tuesday. We agreed to move the delivery\r\n"
        "of the second milestone to the end of next month, and Dave will send the revised budget\r\n"
        "by Friday. The next meeting is planned for the 12th at 10:00 in the usual room.\r\n\r\n"
        f"Kind regards,\r\nCarol (ref {n})\r\n"
    )
    return (
        f"From: Carol Jones <{sender}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {formatdate(localtime=False)}\r\n"
        f"Message-ID: {make_msgid(domain='partner.example')}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n" + body
    ).encode()
