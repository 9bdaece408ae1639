"""Training in a real browser (Debian's Chromium through chromium-driver) against the real portal over HTTPS:
a user follows a phishing-simulation link and reads its landing page, opens "My training", reads a module,
fails its quiz, retakes it and sees the passing score; an administrator sees the assignment status and the
campaign's results. Photographs My training, a quiz, the landing page and the admin results.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_kit import PASSWORD, PortalRunner, enrol_totp, portal_deployment, settings_of
from selenium.webdriver.common.by import By
from test_browser_flows import browser_sign_in, click_and_wait, shot, submit

from mailbastion.testing.deployment import Deployment
from mailbastion.training.campaigns import CampaignStore
from mailbastion.training.modules import load_modules

pytestmark = pytest.mark.slow

ADMIN, ALICE, BOB = "trainer@example.test", "alice@example.test", "bob@example.test"
ADMIN_PASSWORD = "Admin-Passphrase-2026"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, PortalRunner, dict[str, str]]]:
    d = portal_deployment(Path(tmp_path_factory.mktemp("training-browser")))
    for address in (ALICE, BOB):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
        d.mb("account", "alias", "add", "sales@example.test", address)
    d.mb("account", "add", ADMIN, "--password-stdin", input=ADMIN_PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "security lead")
    d.mb("training", "assign", "phishing", "--all")
    d.mb("training", "assign", "passwords", "--group", "sales", "--due", "2030-06-30")
    runner = PortalRunner(settings_of(d)).start()
    store = CampaignStore(runner.ctx.directory, runner.ctx.settings)
    store.create("spring-docs", template="shared-document", target="sales", by="test")
    sent = runner.call(store.send("spring-docs", runner.ctx.spool, portal_url=runner.url))
    assert len(sent) == 2
    links: dict[str, str] = {}
    for path in runner.ctx.spool.root.rglob("*"):  # the committed copies (no server delivers them here)
        if path.is_file():
            data = path.read_bytes()
            m = re.search(rb"/l/spring-docs/[A-Za-z0-9_-]+", data)
            to = re.search(rb"\nTo: ([^\r\n]+)", data)
            if m and to:
                links[to.group(1).decode().strip()] = m.group(0).decode()
    assert set(links) == {ALICE, BOB}, links
    try:
        yield d, runner, links
    finally:
        runner.stop()


def choose(browser: Any, answers: dict[int, int]) -> None:
    for q, c in answers.items():
        browser.find_element(By.ID, f"q{q}-{c}").click()


def test_a_user_reads_a_module_fails_retakes_and_passes(browser: Any, site: tuple[Deployment, PortalRunner, dict[str, str]]) -> None:
    _d, runner, links = site
    browser.delete_all_cookies()
    browser.get(runner.url + links[ALICE])  # the simulation's link, as a click in the message
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "This was a phishing simulation"
    assert "docs-share-secure.invalid" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "training-landing")

    browser_sign_in(browser, runner, ALICE)
    browser.get(runner.url + "/my/training")
    rows = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[2].text
            for r in browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")}
    assert rows == {"Recognising phishing": "assigned", "Passwords and multi-factor": "assigned"}, rows
    shot(browser, "training-mine")

    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Recognising phishing"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Recognising phishing"
    module = load_modules()["phishing"]
    choose(browser, {i: (q.answer + 1) % len(q.choices) for i, q in enumerate(module.questions)})  # all wrong
    submit(browser, "Send my answers")
    result = browser.find_element(By.ID, "result").text
    assert "You scored 0%: not passed" in result
    choose(browser, {i: q.answer for i, q in enumerate(module.questions)})
    shot(browser, "training-quiz")
    submit(browser, "Retake the quiz")
    assert "You scored 100%: passed" in browser.find_element(By.ID, "result").text

    browser.get(runner.url + "/my/training")
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")[0].find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "Recognising phishing" and cells[2] == "completed" and cells[3] == "100%" and cells[4] == "2", cells


def test_an_administrator_sees_assignments_and_campaign_results(browser: Any, site: tuple[Deployment, PortalRunner, dict[str, str]]) -> None:
    _d, runner, _links = site
    totp = enrol_totp(runner.ctx, ADMIN)
    browser_sign_in(browser, runner, ADMIN, ADMIN_PASSWORD, totp)
    browser.get(runner.url + "/admin/training")
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "Phishing simulations" in main and "sales@example.test" in main
    campaign_row = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "main table tbody tr") if "spring-docs" in r.text]
    assert campaign_row and campaign_row[0].endswith("2 1 0 1"), campaign_row  # delivered, clicked, reported, ignored
    browser.execute_script("document.getElementById('simulations').scrollIntoView()")
    shot(browser, "training-admin")
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "spring-docs"))
    outcomes = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
                for r in browser.find_elements(By.CSS_SELECTOR, "main table")[1].find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert outcomes == {ALICE: "clicked", BOB: "ignored"}, outcomes
    shot(browser, "training-campaign")
