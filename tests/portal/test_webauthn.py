"""WebAuthn security keys as the optional second factor, over real HTTPS against a running portal, with a
software authenticator written here from the specification (W3C WebAuthn Level 2 §6.1, §6.5, §8.7): an ES256
key (RFC 9053 COSE_Key), attestation "none", assertions signed over authenticatorData || SHA-256(clientDataJSON).
The server side is py_webauthn; what is tested is the portal's use of it: challenges bound to the session and
used once, the origin and RP ID, the signature counter, CSRF, TOTP first, audit records, and the two pages'
script policy (every other page still has none). Last, the whole ceremony in the session's real Chromium with
its virtual authenticator (WebDriver's CTAP2 authenticator), on https://localhost (a browser refuses an IP
address as RP ID)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import struct
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from portal_kit import (
    PASSWORD,
    SCREENSHOTS,
    PortalRunner,
    csrf_of,
    enrol_totp,
    http,
    portal_deployment,
    settings_of,
    sign_in,
)

from mailbastion.directory.webauthn_keys import SecurityKeys
from mailbastion.portal.security_headers import CSP, SCRIPT_CSP
from mailbastion.testing.deployment import free_port

ADMIN, DESK, USER = "admin@example.test", "desk@example.test", "user@example.test"


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A FIDO2 authenticator in software: one ES256 credential, user presence and verification asserted."""

    def __init__(self, origin: str, rp_id: str | None = None) -> None:
        self.origin, self.rp_id = origin, rp_id or (urlsplit(origin).hostname or "")
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.count = 0

    def _cose(self) -> bytes:
        n = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any]) -> str:
        assert options["rp"]["id"] == self.rp_id and {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
        client_data = self._client_data("webauthn.create", options["challenge"])
        auth_data = (hashlib.sha256(self.rp_id.encode()).digest() + bytes([0x45]) + struct.pack(">I", self.count)
                     + bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                           "clientExtensionResults": {},
                           "response": {"clientDataJSON": b64u(client_data), "attestationObject": b64u(attestation),
                                        "transports": ["usb"]}})

    def get(self, options: dict[str, Any], *, count: int | None = None) -> str:
        self.count = self.count + 1 if count is None else count
        client_data = self._client_data("webauthn.get", options["challenge"])
        auth_data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([0x05]) + struct.pack(">I", self.count)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps({"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                           "clientExtensionResults": {},
                           "response": {"clientDataJSON": b64u(client_data), "authenticatorData": b64u(auth_data),
                                        "signature": b64u(signature), "userHandle": None}})


def options_of(page: str) -> dict[str, Any]:
    m = re.search(r'data-options="([^"]*)"', page)
    assert m, page[:2000]
    return json.loads(html.unescape(m.group(1)))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, PortalRunner, dict[str, Any]]]:
    d = portal_deployment(Path(tmp_path_factory.mktemp("portal-webauthn")))
    for address in (ADMIN, DESK, USER):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    d.mb("account", "role", DESK, "helpdesk", "--reason", "test")
    runner = PortalRunner(settings_of(d)).start()
    codes = {ADMIN: enrol_totp(runner.ctx, ADMIN), DESK: enrol_totp(runner.ctx, DESK)}
    yield d, runner, codes
    runner.stop()


def full_session(site: Any, address: str) -> Any:
    d, runner, codes = site
    client = http(runner, d)
    r = sign_in(client, address, totp=codes.get(address))
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:300]
    return client


def password_only(site: Any, address: str) -> Any:
    d, runner, _ = site
    client = http(runner, d)
    page = client.get("/signin")
    r = client.post("/signin", data={"csrf": csrf_of(page.text), "address": address, "password": PASSWORD,
                                     "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/signin/totp"
    return client


def register(client: Any, token: SoftAuthenticator, name: str) -> Any:
    page = client.get("/my/security-keys")
    return client.post("/my/security-keys", data={"csrf": csrf_of(page.text), "action": "register", "name": name,
                                                  "credential": token.create(options_of(page.text))})


def assert_script_page(r: Any) -> None:
    assert r.headers["content-security-policy"] == SCRIPT_CSP and "script-src 'self'" in SCRIPT_CSP
    assert '<script src="/static/webauthn.js"></script>' in r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # no inline script
    assert not re.search(r"\son[a-z]+=", r.text)  # no inline handlers


def test_an_administrator_registers_a_key_and_signs_in_with_it(site: Any) -> None:
    _, runner, _ = site
    token = SoftAuthenticator(runner.url)
    keys = SecurityKeys(runner.ctx.directory)
    with closing(full_session(site, ADMIN)) as admin:
        page = admin.get("/my/security-keys")
        assert page.status_code == 200
        assert_script_page(page)
        options = options_of(page.text)
        assert options["rp"]["id"] == "127.0.0.1" and options["user"]["name"] == ADMIN
        assert options["attestation"] == "none" and options["excludeCredentials"] == []
        r = register(admin, token, "Soft key")
        assert r.status_code == 200 and "The security key was registered." in r.text, r.text[:2000]
        assert [k.name for k in keys.list(ADMIN)] == ["Soft key"]
        assert options_of(r.text)["excludeCredentials"][0]["id"] == b64u(token.credential_id)
        # The same authenticator again is refused (its credential id is known); nothing is added.
        r = register(admin, token, "Again")
        assert r.status_code == 400 and "registered already" in html.unescape(r.text)
        assert len(keys.list(ADMIN)) == 1
        # Every other page still allows no script at all.
        assert admin.get("/my/account").headers["content-security-policy"] == CSP
    added = [e for e in runner.ctx.audit.events(limit=50) if e.action == "portal.webauthn_added"]
    assert added and added[0].actor == f"portal:{ADMIN}" and added[0].details["name"] == "Soft key"

    with closing(password_only(site, ADMIN)) as client:
        totp_page = client.get("/signin/totp")
        assert 'href="/signin/webauthn"' in totp_page.text
        page = client.get("/signin/webauthn")
        assert page.status_code == 200
        assert_script_page(page)
        assert client.get("/admin").status_code == 303  # not signed in until the key answers
        options = options_of(page.text)
        assert [c["id"] for c in options["allowCredentials"]] == [b64u(token.credential_id)]
        answer = token.get(options)
        r = client.post("/signin/webauthn", data={"csrf": csrf_of(page.text), "credential": answer})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert client.get("/admin").status_code == 200
    signin = next(e for e in runner.ctx.audit.events(limit=20) if e.action == "portal.signin")
    assert signin.subject == ADMIN and signin.details["mfa"] == "webauthn"
    (key,) = keys.list(ADMIN)
    assert key.sign_count == token.count and key.last_used_at is not None

    # The same answer replayed in another password-only session: a new challenge, refused and audited.
    with closing(password_only(site, ADMIN)) as client:
        page = client.get("/signin/webauthn")
        r = client.post("/signin/webauthn", data={"csrf": csrf_of(page.text), "credential": answer})
        assert r.status_code == 401 and client.get("/admin").status_code == 303
    failed = next(e for e in runner.ctx.audit.events(limit=20) if e.action == "portal.signin_failed")
    assert failed.subject == ADMIN and failed.reason.startswith("security key refused")
    runner.ctx.store.clear_failures(ADMIN)


@pytest.mark.parametrize("case", ["other origin", "other rp id", "unknown key", "counter backwards", "no csrf",
                                  "challenge used twice"])
def test_a_wrong_assertion_never_completes_the_sign_in(site: Any, case: str) -> None:
    _, runner, _ = site
    token = SoftAuthenticator(runner.url)
    with closing(full_session(site, DESK)) as desk:
        assert register(desk, token, f"Key {case}").status_code == 200
    client = password_only(site, DESK)
    page = client.get("/signin/webauthn")
    options = options_of(page.text)
    data = {"csrf": csrf_of(page.text)}
    if case in ("counter backwards", "challenge used twice"):
        data["credential"] = token.get(options, count=10)
        assert client.post("/signin/webauthn", data=data).status_code == 303  # the first use works ...
        client.close()
        client = password_only(site, DESK)  # ... then a new password-only session
        page = client.get("/signin/webauthn")
        data["csrf"] = csrf_of(page.text)
        if case == "counter backwards":  # a cloned key: its counter is behind the one we saw
            data["credential"] = token.get(options_of(page.text), count=3)
    elif case == "other origin":
        answer = SoftAuthenticator("https://evil.example", "127.0.0.1")
        answer.key, answer.credential_id = token.key, token.credential_id
        data["credential"] = answer.get(options)
    elif case == "other rp id":
        answer = SoftAuthenticator(runner.url, "evil.example")
        answer.key, answer.credential_id = token.key, token.credential_id
        data["credential"] = answer.get(options)
    elif case == "unknown key":
        data["credential"] = SoftAuthenticator(runner.url).get(options)
    else:  # no csrf
        data = {"credential": token.get(options)}
    with closing(client):
        r = client.post("/signin/webauthn", data=data)
        assert r.status_code in (401, 403), (case, r.status_code)
        assert client.get("/admin/accounts").status_code == 303, case
    runner.ctx.store.clear_failures(DESK)


def test_keys_need_totp_first_and_go_with_it(site: Any) -> None:
    _, runner, codes = site
    keys = SecurityKeys(runner.ctx.directory)
    with closing(full_session(site, USER)) as user:  # a plain user without TOTP
        page = user.get("/my/security-keys")
        assert page.status_code == 200 and "Set up your authenticator app first" in page.text
        assert "data-options" not in page.text
        r = user.post("/my/security-keys", data={"csrf": csrf_of(page.text), "action": "register", "name": "x",
                                                 "credential": "{}"})
        assert keys.list(USER) == []
        assert user.post("/my/security-keys", data={"action": "register"}).status_code == 403  # no CSRF token
        assert user.get("/signin/webauthn").status_code == 303  # complete already: nothing to do there
    # A password-only session without keys is sent to the code.
    with closing(password_only(site, DESK)) as client:
        if not keys.list(DESK):
            r = client.get("/signin/webauthn")
            assert r.status_code == 303 and r.headers["location"] == "/signin/totp"
    # Removing the second factor from the account page removes the keys too.
    token = SoftAuthenticator(runner.url)
    with closing(full_session(site, DESK)) as desk:
        register(desk, token, "Desk key 2")
    assert keys.list(DESK)
    with closing(full_session(site, ADMIN)) as admin:
        page = admin.get(f"/admin/accounts/{DESK}")
        r = admin.post(f"/admin/accounts/{DESK}/totp-reset", data={"csrf": csrf_of(page.text), "reason": "lost phone"})
        assert r.status_code == 303
    assert keys.list(DESK) == []
    removed = next(e for e in runner.ctx.audit.events(limit=20) if e.action == "portal.webauthn_removed")
    assert removed.subject == DESK and removed.actor == f"portal:{ADMIN}" and removed.reason == "lost phone"
    codes[DESK] = enrol_totp(runner.ctx, DESK)
    # `mailbastion account totp-reset` on the command line removes them as well.
    with closing(full_session(site, DESK)) as desk:
        register(desk, token, "Desk key 3")
    assert [k.name for k in keys.list(DESK)] == ["Desk key 3"]
    out = site[0].mb("account", "totp-reset", DESK, "--reason", "lost phone again")
    assert "and 1 security key(s) removed" in out and keys.list(DESK) == []
    codes[DESK] = enrol_totp(runner.ctx, DESK)


def test_the_script_is_served_and_pages_work_without_it(site: Any) -> None:
    d, runner, _ = site
    with closing(http(runner, d)) as client:
        r = client.get("/static/webauthn.js")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        assert "navigator.credentials.create" in r.text and "navigator.credentials.get" in r.text
        assert r.headers["content-security-policy"] == CSP
        r = client.get("/my/security-keys")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")


@pytest.mark.slow
def test_a_real_browser_registers_and_uses_a_key(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
    from test_browser_flows import click_and_wait, fill, submit

    port = free_port()
    d = portal_deployment(tmp_path, extra={("portal", "listen"): f'"127.0.0.1:{port}"',
                                           ("portal", "public_url"): f'"https://localhost:{port}"'})
    d.mb("account", "add", ADMIN, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    runner = PortalRunner(settings_of(d)).start()
    base = f"https://localhost:{port}"
    try:
        totp = enrol_totp(runner.ctx, ADMIN)
        options = VirtualAuthenticatorOptions()
        options.is_user_verified = True
        browser.add_virtual_authenticator(options)
        try:
            browser.delete_all_cookies()
            browser.get(base + "/signin")
            fill(browser, "address", ADMIN)
            fill(browser, "password", PASSWORD)
            submit(browser, "Sign in")
            fill(browser, "code", totp.code())
            submit(browser, "Continue")
            assert browser.current_url == base + "/admin", browser.current_url
            browser.get(base + "/my/security-keys")
            fill(browser, "key-name", "Browser key")
            click_and_wait(browser, browser.find_element(By.ID, "webauthn-start"))  # the script posts the form
            assert "The security key was registered." in browser.find_element(By.TAG_NAME, "main").text
            (key,) = SecurityKeys(runner.ctx.directory).list(ADMIN)
            assert key.name == "Browser key" and len(browser.get_credentials()) == 1
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SCREENSHOTS / "security-keys.png"))

            click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.signout button"))
            fill(browser, "address", ADMIN)
            fill(browser, "password", PASSWORD)
            submit(browser, "Sign in")
            assert browser.current_url.endswith("/signin/totp")
            click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Use a security key instead"))
            click_and_wait(browser, browser.find_element(By.ID, "webauthn-start"))
            assert browser.current_url == base + "/admin", browser.current_url
            signin = next(e for e in runner.ctx.audit.events(limit=10) if e.action == "portal.signin")
            assert signin.subject == ADMIN and signin.details["mfa"] == "webauthn"
            assert SecurityKeys(runner.ctx.directory).list(ADMIN)[0].last_used_at is not None
        finally:
            browser.remove_virtual_authenticator()
            browser.delete_all_cookies()
    finally:
        runner.stop()
