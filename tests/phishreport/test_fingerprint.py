"""When a stored message counts as a copy of a reported one."""

from __future__ import annotations

from phishkit import PHISHER, ordinary, phish

from mailbastion.phish_report.fingerprint import Fingerprint, normal_url


def ours(domain: str) -> bool:
    return domain == "example.org"


def test_same_message_id_matches_even_with_another_subject() -> None:
    a = Fingerprint.of(phish())
    b = Fingerprint.of(phish(subject="Final notice", url="https://elsewhere.example/x"))
    assert a.matches(b) == "message-id"


def test_same_sender_and_subject_match_whatever_the_case_and_spacing() -> None:
    a = Fingerprint.of(phish())
    b = Fingerprint.of(phish(msgid="<other@x>", subject="YOUR mailbox  is full: verify your account today",
                             url="https://other.example/p"))
    assert a.matches(b) == "sender+subject"


def test_same_subject_from_another_sender_is_not_a_copy() -> None:
    a = Fingerprint.of(phish())
    b = Fingerprint.of(ordinary("Your mailbox is full: verify your account today", sender="helpdesk@example.org",
                                msgid="<real@example.org>", body="Please tidy up your mailbox.\n"))
    assert a.matches(b, is_ours=ours) is None


def test_a_shared_link_matches_but_not_in_our_own_peoples_mail() -> None:
    a = Fingerprint.of(phish())
    other_run = Fingerprint.of(phish(sender="billing@another-phisher.example", subject="Invoice", msgid="<z@q>"))
    assert a.matches(other_run, is_ours=ours) == "url https://secure-mailbox-verify.example/owa/login.php?u=staff"
    colleague = Fingerprint.of(ordinary("is this real?", sender="bob@example.org", msgid="<fw@example.org>",
                                        body="Got this: https://secure-mailbox-verify.example/owa/login.php?u=staff\n"))
    assert a.matches(colleague, is_ours=ours) is None


def test_bare_hosts_and_ignored_hosts_identify_nothing() -> None:
    assert normal_url("https://secure-mailbox-verify.example/") is None
    assert normal_url("HTTPS://Evil.Example:443/Login?x=1#top") == "https://evil.example/Login?x=1"
    dtd = "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd"
    a = Fingerprint.of(ordinary("a", sender=PHISHER, msgid="<1@a>", body=f"see {dtd}\n"), ignore_hosts=["www.w3.org"])
    b = Fingerprint.of(ordinary("b", sender="x@y.example", msgid="<2@b>", body=f"also {dtd}\n"),
                       ignore_hosts=["www.w3.org"])
    assert a.urls == frozenset() and a.matches(b) is None


def test_a_message_with_nothing_to_match_on_is_not_usable() -> None:
    assert not Fingerprint.of(b"\r\nno header at all\r\n").is_usable
    assert Fingerprint.of(phish()).is_usable
