"""Feature extraction, look-alike domains and the classifier's tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import business_mail, mail

from mailbastion.core.message import SpooledMessage
from mailbastion.spam.features import extract, extract_bytes, url_host
from mailbastion.spam.lookalike import OwnIdentity, fold_name, is_punycode, skeleton
from mailbastion.spam.tokens import tokens


def test_decoded_headers_text_html_urls_and_attachments() -> None:
    raw = mail(subject="=?utf-8?q?Caf=C3=A9_offer?=", html='<p>Hi <a href="https://Shop.Example.org:8443/x?a=1">'
               'buy</a></p><style>.x{}</style>', attachment=("application/zip", "invoice.zip"))
    f = extract_bytes(raw)
    assert f.subject == "Café offer"
    assert "agenda" in f.text and "buy" in f.html_text and ".x{}" not in f.html_text
    assert f.anchors[0].host == "shop.example.org" and f.anchors[0].shown == "buy"
    assert "shop.example.org" in f.url_hosts
    assert [(a.content_type, a.extension) for a in f.attachments] == [("application/zip", "zip")]
    assert f.from_address == "alice@partner.example" and f.from_domain == "partner.example"


def test_mbox_from_line_is_stripped() -> None:
    f = extract_bytes(b"From someone@example.org Mon Jan  1 00:00:00 2002\n" + business_mail())
    assert f.subject == "Agenda for Thursday's project review" and "from" in [n for n in f.header_names]


@pytest.mark.parametrize("raw", [
    b"", b"garbage", b"Subject: =?utf-8?b?!!!?=\r\nDate: Header\xff\r\n\r\nbody",
    (b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html; charset=nonexistent\r\n\r\n"
     b"<a href='http://[::1'>x</a>\r\n--x--"),
])
def test_malformed_mail_never_raises(raw: bytes) -> None:
    tokens(extract_bytes(raw))


def test_features_are_cached_on_the_message() -> None:
    msg = SpooledMessage(business_mail())
    assert extract(msg) is extract(msg)


def test_url_host() -> None:
    assert url_host("http://user:pw@Evil.Example:80/x") == "evil.example"
    assert url_host("www.example.org/path") == "www.example.org"
    assert url_host("http://[2001:db8::1]/") == "2001:db8::1"


def test_tokens_carry_sources_and_auth_symbols() -> None:
    tok = tokens(extract_bytes(mail(text="Visit https://shop.example.co.uk/a now")), ["R_SPF_FAIL", "GTUBE"])
    assert "s:agenda" in tok and "w:visit" in tok and "u:shop.example.co.uk" in tok and "ud:example.co.uk" in tok
    assert "sym:R_SPF_FAIL" in tok and "sym:GTUBE" not in tok


@pytest.mark.parametrize(("domain", "ours"), [
    ("examp1e.com", "example.com"), ("exarnple.com", "example.com"), ("xn--xample-9uf.com", "example.com"),
    ("example.com.evil.test", "example.com"), ("example-login.net", "example.com"), ("exmaple.com", "example.com"),
    ("example.net", "example.com"),
])
def test_lookalike(domain: str, ours: str) -> None:
    assert OwnIdentity.of(["example.com"]).lookalike_of(domain) == ours


@pytest.mark.parametrize("domain", ["example.com", "mail.example.com", "python.org", "examples.dev.test", "ample.com"])
def test_not_lookalike(domain: str) -> None:
    assert OwnIdentity.of(["example.com"]).lookalike_of(domain) is None


def test_skeleton_and_names() -> None:
    assert skeleton("раураl.com") == skeleton("paypal.com")  # Cyrillic р, а, у
    assert is_punycode("xn--80ak6aa92e.com") and not is_punycode("example.com")
    assert fold_name("Smith, Alice") == fold_name("alice.smith") == "alice smith"
    ident = OwnIdentity.of(["example.com"], ["alice.smith@example.com", "info@example.com"])
    assert ident.imitated_in("Alice Smith") == "alice smith"
    assert ident.imitated_in("Info") is None
    assert ident.imitated_in("ceo@example.com via Partner") == "ceo@example.com"


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    """RFC 6532: header fields may carry UTF-8 as is; they must not turn into replacement characters."""
    raw = ("From: Sаmsung Gаlаxy <promo@deals.example>\r\nSubject: Herzliche Glückwünsche!\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nHallo\r\n").encode()
    f = extract_bytes(raw)
    assert f.subject == "Herzliche Glückwünsche!"
    assert f.from_display == "Sаmsung Gаlаxy" and "\ufffd" not in f.from_display


def test_attached_html_is_read_for_forms() -> None:
    page = '<html><form action="https://collect.example/p"><input type="password" name="pw"></form></html>'
    raw = mail(attachment=("text/html", "invoice.html")).replace(b"AAAA", __import__("base64").b64encode(page.encode()))
    f = extract_bytes(raw)
    assert [(a.content_type, a.extension) for a in f.attachments] == [("text/html", "html")]
    assert 'type="password"' in f.attached_markup
    assert "password" not in f.html  # the attachment is not the message's own HTML


def test_tokens_fold_styled_letters_and_skip_the_collectors_headers() -> None:
    raw = ("From: Shop <shop@deals.example>\r\nSubject: \U0001d405\U0001d411\U0001d404\U0001d404 gift\r\n"
           "Delivered-To: collector@corpus.example\r\nX-Status: RO\r\n"
           "Received: from mx.deals.example by mx.corpus.example; Tue, 10 Sep 2002 10:00:00 +0000\r\n"
           "Date: Tue, 10 Sep 2002 10:00:00 +0000\r\n\r\nhello\r\n").encode()
    tok = tokens(extract_bytes(raw))
    assert "s:free" in tok  # mathematical bold F R E E
    assert not [t for t in tok if "delivered-to" in t or "x-status" in t or "2002" in t]
    assert "rh:deals.example" in tok and "rh:corpus.example" in tok


def _html_attachment(page: str) -> bytes:
    import base64

    body = base64.encodebytes(page.encode()).decode().replace("\n", "\r\n")
    return (b"From: Susan <info@sender.test>\r\nTo: bob@example.com\r\nSubject: NEW ORDER\r\n"
            b"Message-ID: <po1@sender.test>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nSee the order.\r\n'
            b'--B\r\nContent-Type: text/html; name="PO45638.Xls.htm"\r\nContent-Disposition: attachment; '
            b'filename="PO45638.Xls.htm"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + body.encode() + b"--B--\r\n")


def test_a_form_behind_a_big_inline_picture_is_still_read() -> None:
    """Phishing pages carry their background inline (a base64 data: URI of 100 KB and more) before the login
    form: the markup read from an attachment leaves the pictures' payloads out, so the form is in it."""
    import base64
    import os

    picture = base64.b64encode(os.urandom(120_000)).decode()
    form = '<form method="post" action="https://collect.test/x.php"><input name="passwd" type="password"></form>'
    page = f'<html><style>.bg {{ background-image: url("data:image/jpeg;base64,{picture}"); }}</style>{form}</html>'
    f = extract_bytes(_html_attachment(page))
    assert 'name="passwd" type="password"' in f.attached_markup
    assert "data:image/jpeg;base64," in f.attached_markup and picture[:64] not in f.attached_markup
    # without pictures nothing is dropped, and what is read stays bounded
    plain = extract_bytes(_html_attachment("<p>" + "x" * 200_000 + "</p>" + form))
    assert len(plain.attached_markup) == 64 * 1024 and "passwd" not in plain.attached_markup


def test_markup_read_from_many_attachments_stays_bounded() -> None:
    """MAX_MARKUP_BYTES in all, then each attachment's usual 64 KiB: forty big HTML files cost about what
    one big one costs plus forty ordinary ones, not forty times a megabyte."""
    import base64

    from mailbastion.spam.features import MAX_MARKUP_BYTES, MAX_PART_BYTES

    page = base64.encodebytes(("<p>" + "x" * 600_000 + "</p>").encode()).decode().replace("\n", "\r\n")
    parts = "".join(f'--B\r\nContent-Type: text/html; name="p{n}.htm"\r\nContent-Disposition: attachment; '
                    f'filename="p{n}.htm"\r\nContent-Transfer-Encoding: base64\r\n\r\n{page}' for n in range(4))
    raw = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: pages\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + parts.encode() + b"--B--\r\n")
    from mailbastion.spam import features

    reads: list[int] = []
    original = features._payload_text

    def counting(part, limit=MAX_PART_BYTES):  # type: ignore[no-untyped-def]
        text = original(part, limit)
        reads.append(len(text))
        return text

    features._payload_text = counting  # type: ignore[assignment]
    try:
        f = extract_bytes(raw)
    finally:
        features._payload_text = original  # type: ignore[assignment]
    assert len(f.attached_markup) >= 4 * MAX_PART_BYTES
    assert sum(reads) <= MAX_MARKUP_BYTES + 4 * MAX_PART_BYTES
    assert reads[0] > MAX_PART_BYTES  # the first still read past 64 KiB
