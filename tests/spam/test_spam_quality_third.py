"""Issue 8 item 11, third pass (docs/spam-quality.md, "Third session"): each rule or word list added fires on a small
hand-written message of the shape it names and stays quiet on its ordinary look-alike."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import mail, rule_names, shipped_action

from mailbastion.core.verdict import Action


def _dkim(domain: str) -> tuple[str, str]:
    return ("DKIM-Signature", f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=selector1; h=From:Subject; "
                              "bh=AAAA; b=BBBB")


def _exchange_online(*, signed: bool, from_: str = "Rate Quotes <qwhzkx4ab12c@duty.offers.example>") -> bytes:
    """A message as it leaves an Exchange Online tenant: its Message-ID and its outbound hop."""
    extra = [("Received", "from SG2PR01CA0001.apcprd01.prod.outlook.com by "
                          "TYDPR03CU002.outbound.protection.outlook.com with Microsoft SMTP Server; Fri, 6 Feb 2026")]
    if signed:
        extra.append(_dkim("contosogroup.onmicrosoft.com"))
    raw = mail(from_=from_, message_id=False, extra=extra)
    return raw.replace(b"MIME-Version", b"Message-ID: <babe89a9-8679@SG2PEPF000B66CB.apcprd03.prod.outlook.com>\r\n"
                                        b"MIME-Version")


WORDPRESS = ("Username: www.abcdef.blogspot.example - 12345 USD KRAKEN\n\nTo set your password, visit the following "
             "address:\n\nhttps://shop.example.org/wp-login.php?action=rp\n")

FIRES = [
    # A Microsoft 365 trial tenant with a made-up name sends for a domain it has nothing to do with.
    (mail(from_="Home Insurance <qwhzkx@mail.offers.example>", extra=[_dkim("abc20161234.onmicrosoft.com")]),
     "DKIM_FOREIGN_TENANT"),
    (_exchange_online(signed=False), "MS365_UNSIGNED"),
    (mail(from_="WordPress <wordpress@shop.example.org>", subject="[Shop] Login Details", text=WORDPRESS),
     "WEBFORM_MONEY_LURE"),
    (mail(subject="Your account has been created", text="Hi x.pages.example - WITHDRAW FUNDS 1200 USDT, thanks for "
          "creating an account."), "WEBFORM_MONEY_LURE"),
    (mail(from_="Sicherheit <secure@shop.example>", subject="Letzte Erinnerung",
          text="Ihr Total AV Abonnement ist abgelaufen. Erneuern Sie jetzt."), "SECURITY_RENEWAL_LURE"),
    (mail(from_="Billing <billing@invoices.example>", subject="Order confirmed",
          text="Your McAfee plan has been successfully renewed. Call us to cancel."), "SECURITY_RENEWAL_LURE"),
    (mail(from_="Total AV <secure@shop.example>"), "FROM_BRAND_MISMATCH"),
    (mail(from_="Albert Heijn Cadeaukaart <news@gifts.example>"), "FROM_BRAND_MISMATCH"),
    # The credential request in Dutch, German, French, Spanish, Italian and Portuguese word orders.
    (mail(text="Uw account is geblokkeerd. Uw betaalmethode is niet meer geldig."), "PHISH_CREDENTIAL"),
    (mail(text="Achtung: Ihr Konto wird in 2 Tagen gelöscht!"), "PHISH_CREDENTIAL"),
    (mail(text="Votre compte a été suspendu. Cliquez ici."), "PHISH_CREDENTIAL"),
    (mail(text="Su cuenta ha sido bloqueada temporalmente."), "PHISH_CREDENTIAL"),
    (mail(text="Il tuo account è stato sospeso."), "PHISH_CREDENTIAL"),
    (mail(text="CLIENTE: MARIA\nBLOQUEAMOS SUA CONTA\nMAIS INFORMACOES EM ANEXO."), "PHISH_CREDENTIAL"),
    # Being chosen and promised a prize, in German and French.
    (mail(text="Herzlichen Glückwunsch! Sie wurden ausgewählt und können einen neuen Wagen gewinnen."), "PRIZE_SCAM"),
    (mail(text="Félicitations, vous avez été sélectionné pour recevoir une récompense."), "PRIZE_SCAM"),
    (mail(text="You have been selected to receive a $100 gift card."), "PRIZE_SCAM"),
    (mail(text="Prezado contribuinte, você tem R$ 4.593,21 de restituição. Siga as instruções para o resgate."),
     "PRIZE_SCAM"),
    # Sent "to" the sender, the real recipients on Bcc.
    (mail(from_="Offers <deals@promo.example>").replace(b"To: Bob <bob@example.com>", b"To: deals@promo.example"),
     "TO_IS_SENDER"),
    (mail().replace(b"To: Bob <bob@example.com>",
                    b"To: cpuma@isp.example, cpumatt@news.example, cpun@mail.example"), "RECIPS_DICTIONARY"),
    (mail(subject="未承諾広告※出会いの広場"), "SUBJECT_ADV"),
    (mail(subject="(광고) 여름 특가"), "SUBJECT_ADV"),
    (mail(subject="GET $500 CASH NOW!!!", text="Act fast!! Only today!!"), "TEXT_EXCLAMATIONS"),
]

QUIET = [
    # An organisation that has not published its own DKIM keys signs with its own tenant's default domain.
    (mail(from_="Alice <alice@contoso-group.example>", extra=[_dkim("contosogroup.onmicrosoft.com")]),
     "DKIM_FOREIGN_TENANT"),
    # Signed by its own domain as well: the tenant is only the platform.
    (mail(from_="Alice <alice@partner.example>", extra=[_dkim("partner.example"), _dkim("xyz123.onmicrosoft.com")]),
     "DKIM_FOREIGN_TENANT"),
    # A tenant's own users: Exchange Online signs what they send (with the tenant's default domain at least).
    (_exchange_online(signed=True, from_="Alice <alice@contoso-group.example>"), "MS365_UNSIGNED"),
    (mail(from_="WordPress <wordpress@shop.example.org>", subject="[Shop] Login Details",
          text="Username: alice\n\nTo set your password, visit https://shop.example.org/wp-login.php?action=rp\n"),
     "WEBFORM_MONEY_LURE"),
    (mail(text="The invoice from shop.example.org - 120 USD - is attached, paid by card."), "WEBFORM_MONEY_LURE"),
    # The vendor's own notice, and a security word without a subscription that lapsed.
    (mail(from_="McAfee <renewals@mcafee.com>", text="Your McAfee subscription expires in 30 days."),
     "SECURITY_RENEWAL_LURE"),
    (mail(text="The antivirus scan of the file server finished without findings."), "SECURITY_RENEWAL_LURE"),
    (mail(text="Uw account is aangemaakt. Welkom!"), "PHISH_CREDENTIAL"),
    (mail(text="Ihr Konto wurde erfolgreich eröffnet."), "PHISH_CREDENTIAL"),
    (mail(text="Congratulations on the new job! The team was selected for the final round."), "PRIZE_SCAM"),
    (mail(text="Withdrawal of the old proposal: we are withdrawing it before the review."), "PRIZE_SCAM"),
    (mail(text="Your tax refund for 2023 was paid into your account on 3 May."), "PRIZE_SCAM"),  # one cue
    # A note to oneself copied to a colleague; a team list in alphabetical order with unrelated names.
    (mail(from_="Alice <alice@partner.example>").replace(
        b"To: Bob <bob@example.com>", b"To: alice@partner.example\r\nCc: bob@example.com"), "TO_IS_SENDER"),
    (mail().replace(b"To: Bob <bob@example.com>", b"To: alice@partner.example, bob@example.com, carol@example.org"),
     "RECIPS_DICTIONARY"),
    (mail().replace(b"To: Bob <bob@example.com>", b"To: anna@example.com, anton@example.com, anya@example.com"),
     "RECIPS_DICTIONARY"),  # one domain: a team
    (mail(subject="광고 예산 검토 회의"), "SUBJECT_ADV"),  # "advertising budget review meeting": a word, not the label
    (mail(text="We shipped the release!! Thanks everyone."), "TEXT_EXCLAMATIONS"),
]


@pytest.mark.parametrize(("raw", "symbol"), FIRES)
async def test_rule_fires(raw: bytes, symbol: str) -> None:
    assert symbol in await rule_names(raw)


@pytest.mark.parametrize(("raw", "symbol"), QUIET)
async def test_rule_stays_quiet(raw: bytes, symbol: str) -> None:
    assert symbol not in await rule_names(raw)


def test_a_web_form_lure_alone_reaches_junk() -> None:
    """The form's name field carrying an exchange sum names the message; nothing else in it need corroborate."""
    assert shipped_action("WEBFORM_MONEY_LURE") >= Action.JUNK
