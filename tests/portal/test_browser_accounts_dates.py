"""A leave date set in a real browser (Debian's Chromium through chromium-driver, the session's one browser):
an administrator signs in with password and TOTP, opens a user's account page, sets a leave date in the past
(by the deployment's testing clock, which runs three hours ahead: the date is still an hour ahead of the
machine's own clock);
the portal applies it at once through the lifecycle code (`lifecycle.transitions.leave`, as `mailbastion
account leave` does), the page shows the account as left with its next scheduled transition, and the user's
own browser session ends. The deployment runs on the testing clock, and the real scheduler finds nothing
left to do for that account afterwards (the leave is not applied twice)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_kit import PASSWORD, PortalRunner, enrol_totp, portal_deployment, settings_of
from selenium.webdriver.common.by import By
from test_browser_flows import _set_cookies, browser_sign_in, fill, submit

from mailbastion.directory.models import AccountState
from mailbastion.lifecycle.scheduler import LifecycleScheduler

pytestmark = pytest.mark.slow

ADMIN, LEAVER = "admin@example.test", "leaver@example.test"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PortalRunner, Any]]:
    root = Path(tmp_path_factory.mktemp("portal-browser-dates"))
    d = portal_deployment(root, extra={("lifecycle", "testing_clock_offset_file"): f'"{root / "clock-offset"}"'})
    for address in (ADMIN, LEAVER):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    runner = PortalRunner(settings_of(d)).start()
    try:
        yield runner, enrol_totp(runner.ctx, ADMIN)
    finally:
        runner.stop()


def test_an_admin_sets_a_past_leave_date_and_the_users_session_ends(portal: Any, browser: Any) -> None:
    runner, totp = portal
    (root_clock := Path(runner.settings.path(runner.settings.lifecycle.testing_clock_offset_file))).write_text(
        str(3 * 3600))  # "now" is three hours ahead of the machine's clock for the directory and the portal
    browser_sign_in(browser, runner, LEAVER)
    assert browser.current_url.endswith("/my/quarantine"), browser.current_url
    leaver_cookies = browser.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]

    browser.delete_all_cookies()
    browser_sign_in(browser, runner, ADMIN, PASSWORD, totp)
    browser.get(runner.url + f"/admin/accounts/{LEAVER}")
    assert browser.find_element(By.ID, "next-step").text == "nothing scheduled"
    # An hour from now by the machine's clock, two hours ago by the deployment's: the portal must judge
    # "past" by the injectable clock (Directory.now), as the scheduler does.
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    assert when < runner.ctx.now()
    # A date field's typing order follows the browser's locale: the values are set as the form sends them.
    for field, value in (("leave-date", when.date().isoformat()), ("leave-time", f"{when:%H:%M}")):
        browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, field), value)
    fill(browser, "leave-reason", "HR-90 left this morning")
    submit(browser, "Set leave date")
    assert browser.current_url.endswith("done=left"), browser.current_url
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "the account has left" in main
    facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert "left (cannot receive mail or sign in)" in facts
    assert browser.find_element(By.ID, "leave-at").text == f"{when:%Y-%m-%d %H:%M} UTC"
    assert browser.find_element(By.ID, "next-step").text.startswith("archived (mailbox exported, then removed) on")
    assert "refused (550 5.1.1)" in browser.find_element(By.ID, "leaver-policy").text
    assert browser.find_elements(By.ID, "leave-date") == []  # a leaver's dates are final
    info = runner.ctx.directory.account(LEAVER)
    assert info is not None and info.state is AccountState.LEFT
    left = next(e for e in runner.ctx.audit.events(limit=20) if e.action == "account.left")
    assert left.actor == f"portal:{ADMIN}" and left.subject == LEAVER and left.reason == "HR-90 left this morning"
    assert left.details["portal_sessions_ended"] == 1

    # The leaver's browser: its session is gone, every page sends it to sign in.
    admin_cookies = browser.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    _set_cookies(browser, runner, leaver_cookies)
    browser.get(runner.url + "/my/account")
    assert "/signin" in browser.current_url, browser.current_url
    _set_cookies(browser, runner, admin_cookies)

    # The scheduler (same directory, same moved clock) has nothing left to do for the leaver.
    done = asyncio.run(LifecycleScheduler(runner.settings, directory=runner.ctx.directory).check())
    assert [t for t in done if t.address == LEAVER] == []
    root_clock.write_text("0")
