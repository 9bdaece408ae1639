"""Test kit for the portal: the service in a thread of its own (its own event loop), an HTTPS client that
signs in like a browser does, TOTP codes that respect the one-use rule (with the clock the portal checks them
by, moved a step on instead of waited for), and a Chromium driven by Selenium.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp

from mailbastion.config import Settings, load_settings
from mailbastion.portal.service import PortalService
from mailbastion.portal.totp import PERIOD
from mailbastion.testing.deployment import Deployment, free_port

PASSWORD = "Correct-Horse-Battery-9"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The browser tests photograph each main page here; `MAILBASTION_SCREENSHOTS=docs/screenshots` refreshes the
# repository's copies (by default they go to a temporary folder, so a test run leaves the tree clean).
SCREENSHOTS = Path(os.environ.get("MAILBASTION_SCREENSHOTS") or Path(tempfile.gettempdir()) / "mailbastion-screenshots")


def portal_deployment(root: Path, *, dns: Any = None, extra: dict[tuple[str, str], str] | None = None) -> Deployment:
    """An initialised deployment whose portal listens on a free port (off for `serve`: the test runs it)."""
    port = free_port()
    settings = {("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
                ("portal", "listen"): f'"127.0.0.1:{port}"', ("portal", "public_url"): f'"https://127.0.0.1:{port}"',
                ("portal", "enabled"): "false", ("portal", "digest_time"): '""'}
    settings.update(extra or {})
    d = Deployment(root, dns=dns, settings=settings)
    d.init()
    return d


class StepClock:
    """The clock a portal under test checks TOTP codes with (`PortalContext.totp_clock`): the real time, moved on
    by whole 30-second steps when a test has spent every step the portal accepts now (`Totp.code`), instead of
    waiting up to 30 s for the real clock to open the next one. The portal still takes a code only for its
    clock's step or one either side, and each step once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def next_step(self) -> None:
        self.offset += PERIOD


class PortalRunner:
    """`PortalService` on its own event loop in a thread; `ctx` is its PortalContext (its `totp_clock` a
    StepClock unless the test gives another)."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        overrides.setdefault("totp_clock", StepClock())
        self.settings = settings
        self.service = PortalService(settings, **overrides)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> PortalRunner:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(60)
        return self

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def ctx(self) -> Any:
        return self.service.context

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.service.port}"

    def stop(self) -> None:
        try:
            # it cancels the warm-up, then closes the board: a running refresh ends its `av status` child, and nothing
            # of the child is left for this loop's stop (core/child.py)
            self.call(self.service.stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()  # not left to the garbage collector ("unclosed event loop" in a later test)


def settings_of(d: Deployment) -> Settings:
    return load_settings(d.config)


def client_context(d: Deployment) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False  # the certificate names mail.example.test; the tests reach 127.0.0.1
    return ctx


def http(runner: PortalRunner, d: Deployment) -> httpx.Client:
    return httpx.Client(base_url=runner.url, verify=client_context(d), follow_redirects=False, timeout=60)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1)


class Totp:
    """Codes for a secret, never the same time step twice (the portal refuses a replayed code), for the
    step of `clock`: the portal's `ctx.totp_clock`."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.totp = pyotp.TOTP(secret, interval=PERIOD)
        self.clock = clock
        self.last = 0

    def code(self) -> str:
        while True:
            now = int(self.clock() // PERIOD)
            # With a StepClock a further step costs nothing, so never the previous one: the portal stops taking
            # its code the moment the clock passes into the next step, which can happen before the form is sent.
            steps = (now, now + 1) if isinstance(self.clock, StepClock) else (now - 1, now, now + 1)
            for step in steps:
                if step > self.last:
                    self.last = step
                    return str(self.totp.at(step * PERIOD))
            # Every acceptable step is spent: the next one opens when the clock reaches it.
            if isinstance(self.clock, StepClock):
                self.clock.next_step()
            else:
                time.sleep(0.5)


def enrol_totp(ctx: Any, address: str) -> Totp:
    """Give `address` a confirmed TOTP secret through the store (as the enrolment page does)."""
    secret = pyotp.random_base32(32)
    ctx.store.begin_totp(address, ctx.keys.seal(secret.encode(), address))
    ctx.store.confirm_totp(address, 0, by="test")
    return Totp(secret, ctx.totp_clock)


def sign_in(client: httpx.Client, address: str, password: str = PASSWORD, totp: Totp | None = None) -> httpx.Response:
    """Sign in like a browser; returns the last response (a 303 to the landing page on success)."""
    r = client.get("/signin")
    r = client.post("/signin", data={"csrf": csrf_of(r.text), "address": address, "password": password, "next": "/"})
    if r.status_code == 303 and r.headers["location"] == "/signin/totp":
        assert totp is not None, "this account needs a TOTP code"
        page = client.get("/signin/totp")
        r = client.post("/signin/totp", data={"csrf": csrf_of(page.text), "code": totp.code()})
    return r


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists() and shutil.which(CHROMEDRIVER) is not None


def start_chromium(profile: Path) -> Any:
    """Debian's chromium through chromium-driver: nothing is downloaded (Selenium Manager is not used)."""
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", f"--user-data-dir={profile}", "--lang=en-GB"):
        opts.add_argument(flag)
    opts.accept_insecure_certs = True  # our deployment's private CA; the channel is still TLS
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    return driver
