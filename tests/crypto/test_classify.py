"""Is it confidential: tags, headers, card numbers (Luhn and scheme prefixes) and site patterns."""

from __future__ import annotations

import pytest
from crypto_testkit import message

from mailbastion.config.loader import parse_settings
from mailbastion.core.errors import ConfigError
from mailbastion.crypto.classify import Classifier, find_card_numbers, luhn_ok


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005",
                                    "6011111111111117", "3530111333300000", "4012888888881881"])
def test_card_numbers_are_found(number: str) -> None:
    assert find_card_numbers(f"the card is {number}, thanks") == [number.replace(" ", "").replace("-", "")]


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112",  # fails Luhn
    "order 1234567812345670",  # passes Luhn, no card scheme starts with 12
    "0000000000000000",  # all the same digit
    "+44 20 7946 0958 1234",  # a phone number
    "41111111111111111111111",  # too long
    "invoice 2026-0412-5555-0001",
])
def test_other_numbers_are_not_cards(text: str) -> None:
    assert find_card_numbers(text) == []


def test_luhn() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


def test_a_message_with_a_card_number_is_confidential() -> None:
    c = Classifier().is_confidential(message(body="Please charge 4111-1111-1111-1111 today.\r\n"))
    assert c and c.reasons == ("content: payment card number (1)",)


def test_card_number_in_a_base64_html_attachment_is_found() -> None:
    import base64

    html = base64.b64encode(b"<p>Card: <b>5500 0000 0000 0004</b></p>").decode()
    raw = ("From: a@example.org\r\nTo: b@partner.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
           "--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n"
           f'Content-Disposition: attachment; filename="c.html"\r\n\r\n{html}\r\n--b--\r\n').encode()
    assert Classifier().is_confidential(raw)
    assert not Classifier(content_rules=()).is_confidential(raw)


def test_subject_tag_sensitivity_and_site_header() -> None:
    c = Classifier(classification_header="X-Classification")
    assert c.is_confidential(message(subject="RE: [CONFIDENTIAL] plan")).reasons == ("subject tag [confidential]",)
    assert c.is_confidential(message(extra="Sensitivity: Company-Confidential\r\n")).reasons == (
        "Sensitivity: Company-Confidential",)
    assert c.is_confidential(message(extra="X-Classification: Secret\r\n"))
    assert not c.is_confidential(message(extra="X-Classification: public\r\nSensitivity: Personal\r\n"))
    assert not c.is_confidential(message(subject="confidential matters"))  # the tag, not the word


def test_site_national_id_pattern() -> None:
    settings = parse_settings({"encryption": {"national_id_patterns": {
        "fr_nir": r"\b[12]\d{2}(0[1-9]|1[0-2])\d{8}\d{2}\b"}}})
    c = Classifier.from_settings(settings.encryption)
    assert c.is_confidential(message(body="NIR 185057800608436\r\n")).reasons == ("content: fr_nir",)
    assert not c.is_confidential(message(body="ref 385057800608436\r\n"))


@pytest.mark.parametrize("bad", [{"national_id_patterns": {"x": "("}}, {"national_id_patterns": {"x": "a*"}},
                                 {"content_rules": ["iban"]}, {"subject_tags": [""]}, {"at_rest": ["not a domain"]},
                                 {"without_key": "send"}, {"pickup_url": "http://x.example/"}, {"surprise": 1}])
def test_bad_settings_are_refused_with_one_line(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings({"encryption": bad})
    assert "encryption." in str(exc.value) and "\n" not in str(exc.value)
