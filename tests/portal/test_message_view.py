"""A held message becomes inert text: header fields as received, text parts as text (HTML as its source),
other parts named only; encoded words decoded and control characters made visible."""

from __future__ import annotations

from mailbastion.portal.message_view import decoded_header, inert_view

RAW = (b"From: =?utf-8?q?Bank=20=E2=80=AEknaB?= <a@x.example>\r\nSubject: <script>alert(1)</script>\r\n"
       b"X-Odd: a\r\n continued\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
       b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<b>hi</b><script>x()</script>\r\n"
       b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=run.exe\r\n\r\n"
       b"MZ\x90\x00\r\n--b--\r\n")


def test_inert_view() -> None:
    v = inert_view(RAW)
    assert ("Subject", "<script>alert(1)</script>") in v.headers
    assert ("X-Odd", "a continued") in v.headers
    assert v.subject == "<script>alert(1)</script>"
    assert "\\u202e" in v.sender  # a right-to-left override shows as what it is
    assert [p.text for p in v.parts] == ["<b>hi</b><script>x()</script>"]
    assert [(a.filename, a.text) for a in v.attachments] == [("run.exe", None)]


def test_decoded_header_keeps_what_it_cannot_decode() -> None:
    assert decoded_header("=?bogus?q?x?=") == "=?bogus?q?x?="
    assert decoded_header("a\x1bb") == "a\\u001bb"
