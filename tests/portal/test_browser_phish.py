""""Report as phishing" in a real browser (Debian's Chromium through chromium-driver), against a running
deployment: `mailbastion serve` (MX, queue, MDA writing Maildir) as a child process, the portal with the
phish pages (portal/phish_pages.py over apps/phish_report.py) in a thread of the test.

A user signs in, sees her inbox as inert text, reports a phishing message with the button; the result page
says a copy was moved, and the copy in another user's Maildir is then in the quarantine (with its index
entry). Over HTTP: the form without its CSRF token is refused, and a key of someone else's message finds
nothing. The pages are photographed into the kit's screenshot folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from portal_kit import PASSWORD, SCREENSHOTS, PortalRunner, csrf_of, http, portal_deployment, settings_of, sign_in
from selenium.webdriver.common.by import By
from test_browser_flows import browser_sign_in, click_and_wait, wait_for

from mailbastion.apps.phish_report import PortalPhishDesk
from mailbastion.portal.phish_pages import PhishPages
from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer

pytestmark = pytest.mark.slow

ALICE, BOB = "alice@example.test", "bob@example.test"
PHISHER = "security@account-verify-portal.example"
SUBJECT = 'Action required: <script>alert("x")</script> confirm your <b>mailbox</b>'


def phish(to: str, msgid: str) -> bytes:
    return (f"From: Mail Security <{PHISHER}>\r\nTo: <{to}>\r\nSubject: {SUBJECT}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Your mailbox will be closed today. Confirm your password at\r\n"
            "https://account-verify-portal.example/confirm/mailbox\r\n").encode()


def files_with(d: Deployment, who: str, needle: bytes) -> list[Path]:
    md = d.maildir(who)
    return [p for sub in ("new", "cur") for p in (md / sub).glob("*") if needle in p.read_bytes()]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, PortalRunner]]:
    with DnsTestServer() as dns:
        d = portal_deployment(Path(tmp_path_factory.mktemp("portal-phish")), dns=dns,
                              extra={("spam.dnsbl", "enabled"): "false"})
        for address in (ALICE, BOB):
            d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
        d.start()
        settings = settings_of(d)
        runner = PortalRunner(settings, extensions=[PhishPages(PortalPhishDesk.from_settings(settings))]).start()
        try:
            yield d, runner
        finally:
            runner.stop()
            d.stop()


def shot(browser: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_a_user_reports_a_phish_and_the_copy_elsewhere_is_quarantined(flow: Any, browser: Any) -> None:
    d, runner = flow
    assert d.send(PHISHER, [ALICE, BOB], phish("staff@example.test", "<wave-1@account-verify-portal.example>")) == {}
    for who in (ALICE, BOB):
        wait_for(lambda who=who: files_with(d, who, b"wave-1@account-verify"), f"the phish in {who}'s Maildir")
    browser_sign_in(browser, runner, ALICE)
    browser.get(runner.url + "/my/phish")
    assert "Report phishing" in [a.text for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")]
    # the inbox as inert text: the subject's markup is shown, never made into elements
    main = browser.find_element(By.TAG_NAME, "main")
    assert SUBJECT in main.text and PHISHER in main.text
    assert browser.find_elements(By.TAG_NAME, "script") == [] and browser.find_elements(By.CSS_SELECTOR, "main b") == []
    shot(browser, "phish-report")
    rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "main tbody tr") if SUBJECT in r.text]
    assert len(rows) == 1
    click_and_wait(browser, rows[0].find_element(By.TAG_NAME, "button"))
    assert browser.current_url.endswith("/my/phish/report")
    assert "your report was received" in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_element(By.ID, "moved").text.startswith("1 copy/copies")
    shot(browser, "phish-result")
    # Bob's copy left his Maildir for the quarantine, where the index finds it
    assert not files_with(d, BOB, b"wave-1@account-verify")
    assert files_with(d, ALICE, b"wave-1@account-verify"), "the reporter's own copy stays"
    runner.ctx.qindex.sync()
    held = runner.ctx.qindex.search(recipient=BOB).entries
    assert [e.subject for e in held] == [SUBJECT] and held[0].sender == PHISHER
    # and Alice is thanked by mail, through our own path
    wait_for(lambda: files_with(d, ALICE, b"Your phishing report was received"), "the acknowledgement")


def test_the_report_form_needs_its_csrf_token_and_finds_only_ones_own_mail(flow: Any) -> None:
    d, runner = flow
    # an ordinary message (the first test taught the filter the phish, which now goes to Junk or the quarantine)
    letter = (f"From: Carol <carol@partner.example>\r\nTo: <{BOB}>\r\nSubject: Minutes of Monday\r\n"
              f"Date: {formatdate()}\r\nMessage-ID: <minutes-2@partner.example>\r\n\r\nHere are the minutes.\r\n")
    assert d.send("carol@partner.example", [BOB], letter.encode()) == {}
    [bob_copy] = wait_for(lambda: files_with(d, BOB, b"minutes-2@partner"), "the letter in Bob's Maildir")
    bob_key = bob_copy.name.split(":", 1)[0]
    with http(runner, d) as client:
        assert sign_in(client, ALICE).status_code == 303
        page = client.get("/my/phish")
        assert page.status_code == 200
        refused = client.post("/my/phish/report", data={"key": bob_key})
        assert refused.status_code == 403 and "Form refused" in refused.text
        other = client.post("/my/phish/report", data={"key": bob_key, "csrf": csrf_of(page.text)})
        assert other.status_code == 404  # Bob's message is not in Alice's inbox
        walk = client.post("/my/phish/report", data={"key": "../../bob/new/" + bob_key, "csrf": csrf_of(page.text)})
        assert walk.status_code == 404
    assert bob_copy.exists()
    with http(runner, d) as anonymous:
        assert anonymous.get("/my/phish").status_code in (302, 303)
