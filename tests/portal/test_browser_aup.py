"""The acceptable use policy in a real browser (Debian's Chromium through chromium-driver) against a real
portal: a user signs in and is sent to the policy before anything else, reads it (the shipped template,
its Markdown rendered with no script and no raw HTML), accepts it, and the acceptance is recorded with the
version, its hash and the client address; an administrator sees the versions and the acceptance report;
the helpdesk may read the report, a user may not. The accept page and the report are photographed into
the screenshots folder of the kit (docs/screenshots/ with MAILBASTION_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_kit import (
    PASSWORD,
    SCREENSHOTS,
    PortalRunner,
    Totp,
    enrol_totp,
    http,
    portal_deployment,
    settings_of,
    sign_in,
)
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mailbastion.aup.store import text_hash
from mailbastion.aup.template import template_text
from mailbastion.testing.deployment import Deployment

pytestmark = pytest.mark.slow

ADMIN, HELPDESK, ALICE, BOB = ("admin@example.test", "helpdesk@example.test", "alice@example.test",
                               "bob@example.test")
ADMIN_PASSWORD = "Admin-Passphrase-2026"
VERSION = "2026.1"
# The shipped template as a site fills it in, plus what a careless edit could bring in: it must stay inert.
POLICY = (template_text().replace("[Organisation]", "Example Ltd")
          + "\n<script>document.title='pwned'</script> <img src=x onerror=alert(1)> [x](javascript:alert(2))\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, PortalRunner, dict[str, Totp]]]:
    root: Path = tmp_path_factory.mktemp("portal-aup")
    d = portal_deployment(root)
    for address in (ALICE, BOB):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
    for address, role in ((ADMIN, "administrator"), (HELPDESK, "helpdesk")):
        d.mb("account", "add", address, "--password-stdin", input=ADMIN_PASSWORD + "\n")
        d.mb("account", "role", address, role, "--reason", "test")
    (root / "aup.md").write_text(POLICY, encoding="utf-8")
    d.mb("aup", "publish", str(root / "aup.md"), "--version", VERSION, "--reason", "board decision")
    runner = PortalRunner(settings_of(d)).start()
    codes = {a: enrol_totp(runner.ctx, a) for a in (ADMIN, HELPDESK)}
    try:
        yield d, runner, codes
    finally:
        runner.stop()


def shot(browser: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _replaced(old: Any) -> bool:
    try:
        old.is_enabled()
    except (StaleElementReferenceException, WebDriverException):
        return True
    return False


def click_and_wait(browser: Any, element: Any) -> None:
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 60).until(lambda _b: _replaced(old))
    WebDriverWait(browser, 60).until(lambda b: b.execute_script("return document.readyState") == "complete")


def fill(browser: Any, field_id: str, value: str) -> None:
    el = browser.find_element(By.ID, field_id)
    el.clear()
    el.send_keys(value)


def submit(browser: Any, text: str) -> None:
    buttons = [b for b in browser.find_elements(By.CSS_SELECTOR, "main button") if b.text.strip() == text]
    assert buttons, f"no button {text!r} on {browser.current_url}"
    click_and_wait(browser, buttons[0])


def browser_sign_in(browser: Any, runner: PortalRunner, address: str, password: str,
                    totp: Totp | None = None) -> None:
    browser.delete_all_cookies()
    browser.get(runner.url + "/signin")
    fill(browser, "address", address)
    fill(browser, "password", password)
    submit(browser, "Sign in")
    if totp is not None:
        fill(browser, "code", totp.code())
        submit(browser, "Continue")


def test_a_user_is_sent_to_the_policy_at_sign_in_and_accepts_it(site: Any, browser: Any) -> None:
    _d, runner, _ = site
    browser_sign_in(browser, runner, ALICE, PASSWORD)
    assert browser.current_url == runner.url + "/aup?next=%2F", browser.current_url  # before anything else
    main = browser.find_element(By.TAG_NAME, "main")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Acceptable use policy"
    headings = [h.text for h in main.find_elements(By.CSS_SELECTOR, "article.policy h2")]
    assert "5. Monitoring" in headings and "7. Sanctions" in headings and "3. Personal use" in headings
    assert "Example Ltd" in main.text and text_hash(POLICY) in main.text
    # The policy's stray markup is text: no script, no image, no javascript: link; the title is untouched.
    assert "<script>document.title='pwned'</script>" in main.text
    assert browser.find_elements(By.TAG_NAME, "script") == [] and browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert not [a for a in main.find_elements(By.TAG_NAME, "a") if "javascript" in (a.get_attribute("href") or "")]
    assert browser.title.startswith("Acceptable use policy")
    browser.execute_script("window.scrollTo(0, 0)")
    shot(browser, "aup-accept")
    assert runner.ctx.aup.acceptance(ALICE, VERSION) is None

    # Elsewhere first? The home page sends her back to the policy until she accepts.
    browser.get(runner.url + "/")
    assert browser.current_url.startswith(runner.url + "/aup?next="), browser.current_url
    box = browser.find_element(By.ID, "agree")
    box.click()
    assert box.is_selected()
    submit(browser, "Accept the policy")
    assert browser.current_url == runner.url + "/my/quarantine", browser.current_url  # on to where she was going
    accepted = runner.ctx.aup.acceptance(ALICE, VERSION)
    assert accepted is not None and accepted.sha256 == text_hash(POLICY) and accepted.client == "127.0.0.1"
    event = next(e for e in runner.ctx.audit.events(limit=20) if e.action == "aup.accepted")
    assert event.subject == ALICE and event.details["version"] == VERSION and event.details["client"] == "127.0.0.1"
    browser.get(runner.url + "/aup")
    assert f"You accepted version {VERSION}" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_elements(By.ID, "agree") == []  # nothing more to accept

    # Signing in again goes straight to her pages.
    browser_sign_in(browser, runner, ALICE, PASSWORD)
    assert browser.current_url == runner.url + "/my/quarantine", browser.current_url


def test_the_administrator_sees_versions_and_the_acceptance_report(site: Any, browser: Any) -> None:
    _d, runner, codes = site
    if runner.ctx.aup.acceptance(ALICE, VERSION) is None:
        pytest.skip("needs Alice's acceptance from the first test")
    browser_sign_in(browser, runner, ADMIN, ADMIN_PASSWORD, codes[ADMIN])
    assert "/aup?next=" in browser.current_url  # the administrator accepts too
    browser.find_element(By.ID, "agree").click()
    submit(browser, "Accept the policy")
    assert browser.current_url == runner.url + "/admin", browser.current_url
    browser.get(runner.url + "/admin/aup")
    main = browser.find_element(By.TAG_NAME, "main")
    version_row = main.find_elements(By.CSS_SELECTOR, "table")[0].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(version_row) == 1 and VERSION in version_row[0].text and "in effect" in version_row[0].text
    rows = {r.find_elements(By.TAG_NAME, "td")[0].text: r.text
            for r in main.find_elements(By.CSS_SELECTOR, "table")[1].find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert set(rows) >= {ALICE, BOB, ADMIN, HELPDESK}
    assert "accepted" in rows[ALICE] and "127.0.0.1" in rows[ALICE] and "accepted" in rows[ADMIN]
    assert rows[BOB].split()[1] == "due"
    assert "2 accepted" in main.text
    shot(browser, "aup-report")

    # Filtered and as CSV, through the page's own links
    browser.find_element(By.CSS_SELECTOR, "#state option[value=due]").click()
    submit(browser, "Filter")
    shown = [r.find_elements(By.TAG_NAME, "td")[0].text
             for r in browser.find_elements(By.CSS_SELECTOR, "main table")[1].find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert BOB in shown and ALICE not in shown
    browser.find_element(By.LINK_TEXT, VERSION).click()
    WebDriverWait(browser, 60).until(lambda b: f"/admin/aup/v/{VERSION}" in b.current_url)
    assert text_hash(POLICY) in browser.find_element(By.TAG_NAME, "main").text


def test_who_may_read_the_report(site: Any) -> None:
    d, runner, codes = site
    with http(runner, d) as helpdesk:
        assert sign_in(helpdesk, HELPDESK, ADMIN_PASSWORD, codes[HELPDESK]).status_code == 303
        r = helpdesk.get("/admin/aup")
        assert r.status_code == 200 and "Acceptance of version" in r.text  # the helpdesk reads the report
        r = helpdesk.get(f"/admin/aup/report.csv?version={VERSION}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = {row["address"]: row for row in csv.DictReader(io.StringIO(r.text))}
        assert rows[BOB]["state"] == "due" and rows[BOB]["overdue"] == "no"
    with http(runner, d) as bob:
        r = sign_in(bob, BOB, PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/aup?next=%2F"
        assert bob.get("/admin/aup").status_code == 403 and bob.get("/admin/aup/report.csv").status_code == 403
        page = bob.get("/aup")
        assert page.status_code == 200 and "Accept the policy" in page.text
        # a form without its CSRF token is refused, and records nothing
        r = bob.post("/aup", data={"version": VERSION, "sha256": text_hash(POLICY), "agree": "yes"})
        assert r.status_code == 403 and runner.ctx.aup.acceptance(BOB, VERSION) is None
    with http(runner, d) as nobody:
        r = nobody.get("/aup")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
