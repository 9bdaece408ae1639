"""The portal over real HTTPS (httpx): every page but the public ones needs a session, forms need their
CSRF token, roles are enforced, sessions end on sign-out, idle, absolute expiry and suspension, sign-in
failures lock, and every sign-in and admin action is in the audit log."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from portal_kit import (
    PASSWORD,
    PortalRunner,
    csrf_of,
    enrol_totp,
    http,
    portal_deployment,
    settings_of,
    sign_in,
)
from starlette.routing import Route

from mailbastion.portal.app import is_public, routes
from mailbastion.portal.extensions import LandingPage, LandingRoutes
from mailbastion.portal.security_headers import SECURITY_HEADERS


class Setup:
    def thunderbird_autoconfig(self, address: str) -> str | None:
        return f"<clientConfig version='1.1'><emailProvider id='x'><username>{address}</username></emailProvider></clientConfig>"

    def outlook_autodiscover(self, address: str) -> str | None:
        return f"<Autodiscover><Response><User><EMailAddress>{address}</EMailAddress></User></Response></Autodiscover>"


ADMIN, HELPDESK, USER, OTHER = ("admin@example.test", "desk@example.test", "carol@example.test",
                                "dave@example.test")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, PortalRunner, dict[str, Any]]]:
    d = portal_deployment(Path(tmp_path_factory.mktemp("portal-http")))
    for address in (ADMIN, HELPDESK, USER, OTHER):
        d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    d.mb("account", "role", HELPDESK, "helpdesk", "--reason", "test")
    landing = LandingRoutes()

    async def spring_sale(token: str, client: str) -> LandingPage | None:
        if token != "t0k3n":
            return None
        return LandingPage("This was a test", (f"<b>{token}</b> from {client}: the sender's domain was wrong.",))

    landing.register("spring-sale", spring_sale)
    runner = PortalRunner(settings_of(d), landing=landing, client_setup=Setup()).start()
    codes = {ADMIN: enrol_totp(runner.ctx, ADMIN), HELPDESK: enrol_totp(runner.ctx, HELPDESK)}
    yield d, runner, codes
    runner.stop()


def signed_in(site: Any, address: str) -> Any:
    d, runner, codes = site
    client = http(runner, d)
    r = sign_in(client, address, totp=codes.get(address))
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:500]
    return client


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: {"address": USER, "qid": "20260101T000000Z-00000000",
                                                  "action": "state", "op": "hold", "token": "x" * 43,
                                                  "campaign": "c"}.get(m.group(1), "x"), path)


def test_every_page_but_the_public_ones_needs_a_session(site: Any) -> None:
    d, runner, _ = site
    app_routes = [r for r in routes(runner.ctx) if isinstance(r, Route)]
    assert len(app_routes) > 25
    checked = 0
    with http(runner, d) as client:
        for route in app_routes:
            path = concrete(route.path)
            for method in sorted(route.methods or ()):
                if method == "HEAD":
                    continue
                r = client.request(method, path, data={"csrf": "x"} if method == "POST" else None)
                if is_public(path):
                    assert r.status_code != 303 or not r.headers["location"].startswith("/signin?"), path
                    continue
                assert r.status_code == 303, (method, path, r.status_code)
                assert r.headers["location"].startswith("/signin"), (method, path)
                checked += 1
    assert checked >= 25


def test_security_headers_and_cookie_flags(site: Any) -> None:
    d, runner, _ = site
    with http(runner, d) as client:
        for path in ("/signin", "/admin", "/.well-known/mta-sts.txt", "/no-such-page"):
            r = client.get(path)
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, (path, name)
        csp = SECURITY_HEADERS["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert client.get("/signin").headers["cache-control"] == "no-store"
        r = sign_in(client, USER)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-mb_session=")
        for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
            assert flag.lower() in cookie.lower(), cookie
        assert "domain=" not in cookie.lower()


def test_a_form_without_its_csrf_token_is_refused(site: Any) -> None:
    d, runner, _ = site
    with closing(signed_in(site, ADMIN)) as client:
        for data in ({"address": "nocsrf@example.test"}, {"address": "nocsrf@example.test", "csrf": "forged"}):
            r = client.post("/admin/accounts", data=data)
            assert r.status_code == 403 and "security token" in r.text
        assert runner.ctx.directory.account("nocsrf@example.test") is None
        token = csrf_of(client.get("/admin/accounts").text)
        r = client.post("/admin/accounts", data={"address": "withcsrf@example.test", "csrf": token, "reason": "t"})
        assert r.status_code == 303
        assert runner.ctx.directory.account("withcsrf@example.test") is not None
    with http(runner, d) as anon:  # the sign-in form too: its token is bound to the browser's pre-session cookie
        r = anon.post("/signin", data={"csrf": "x", "address": USER, "password": PASSWORD})
        assert r.status_code == 403


def test_helpdesk_cannot_open_configuration_pages(site: Any) -> None:
    with closing(signed_in(site, HELPDESK)) as client:
        for path in ("/admin", "/admin/quarantine", "/admin/queue", "/admin/audit", "/admin/dns"):
            r = client.get(path)
            assert r.status_code == 403 and "Not allowed" in r.text, path
        assert client.get("/admin/accounts").status_code == 200
        page = client.get(f"/admin/accounts/{ADMIN}")
        assert page.status_code == 200
        # It cannot act on an administrator (a password link would hand the admin account over).
        r = client.post(f"/admin/accounts/{ADMIN}/enrol-link", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 403
        r = client.post(f"/admin/accounts/{USER}/role", data={"csrf": csrf_of(page.text), "role": "administrator"})
        assert r.status_code == 403


def test_a_user_cannot_open_admin_pages(site: Any) -> None:
    with closing(signed_in(site, USER)) as client:
        for path in ("/admin", "/admin/accounts", "/admin/quarantine"):
            assert client.get(path).status_code == 403
        assert client.get("/my/quarantine").status_code == 200


def test_session_cookie_does_not_work_after_sign_out(site: Any) -> None:
    d, runner, _ = site
    client = signed_in(site, USER)
    token = client.cookies.get("__Host-mb_session")
    assert client.get("/my/account").status_code == 200
    r = client.post("/signout", data={"csrf": csrf_of(client.get("/my/account").text)})
    assert r.status_code == 303
    with http(runner, d) as replay:
        replay.cookies.set("__Host-mb_session", token, domain="127.0.0.1")
        r = replay.get("/my/account")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    assert runner.ctx.audit.events(limit=5, subject=USER)[0].action == "portal.signout"


def test_suspending_an_account_ends_its_session(site: Any) -> None:
    d, runner, _ = site
    victim = signed_in(site, OTHER)
    assert victim.get("/my/quarantine").status_code == 200
    with closing(signed_in(site, ADMIN)) as admin:
        token = csrf_of(admin.get(f"/admin/accounts/{OTHER}").text)
        r = admin.post(f"/admin/accounts/{OTHER}/state", data={"csrf": token, "state": "suspended", "reason": "test"})
        assert r.status_code == 303
    r = victim.get("/my/quarantine")
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    assert sign_in(http(runner, d), OTHER).status_code == 401  # and it cannot sign in again
    d.mb("account", "state", OTHER, "active", "--reason", "back")


def test_suspension_from_the_command_line_ends_the_session_too(site: Any) -> None:
    d, _, _ = site
    victim = signed_in(site, OTHER)
    d.mb("account", "state", OTHER, "suspended", "--reason", "from the CLI")
    r = victim.get("/my/quarantine")
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    d.mb("account", "state", OTHER, "active", "--reason", "back")


def test_administrators_need_their_totp_code(site: Any) -> None:
    d, runner, codes = site
    with http(runner, d) as client:
        page = client.get("/signin")
        r = client.post("/signin", data={"csrf": csrf_of(page.text), "address": ADMIN, "password": PASSWORD})
        assert r.headers["location"] == "/signin/totp"
        # Password alone: no page but the code one.
        assert client.get("/admin").headers["location"] == "/signin/totp"
        code = codes[ADMIN].code()
        form = csrf_of(client.get("/signin/totp").text)
        assert client.post("/signin/totp", data={"csrf": form, "code": code}).status_code == 303
        assert client.get("/admin").status_code == 200
    with http(runner, d) as again:  # the same code a second time (a replay) is refused
        page = again.get("/signin")
        again.post("/signin", data={"csrf": csrf_of(page.text), "address": ADMIN, "password": PASSWORD})
        form = csrf_of(again.get("/signin/totp").text)
        assert again.post("/signin/totp", data={"csrf": form, "code": code}).status_code == 401


def test_repeated_failures_lock_the_account_and_are_audited(site: Any) -> None:
    d, runner, _ = site
    victim = "locked@example.test"
    d.mb("account", "add", victim, "--password-stdin", input=PASSWORD + "\n")
    limit = runner.settings.portal.login_max_failures
    with http(runner, d) as client:
        for _ in range(limit):
            assert sign_in(client, victim, password="wrong-password-123").status_code == 401
        r = sign_in(client, victim)  # now even the right password fails, with the same words
        assert r.status_code == 401 and "Sign-in failed" in r.text
    actions = [e.action for e in runner.ctx.audit.events(limit=20, subject=victim)]
    assert "portal.lockout" in actions and actions.count("portal.signin_failed") >= limit
    runner.ctx.store.unlock(victim, by="test")
    assert sign_in(http(runner, d), victim).status_code == 303


def test_idle_and_absolute_expiry(site: Any) -> None:
    _, runner, _ = site
    client = signed_in(site, USER)
    digest = runner.ctx.store.session  # the row, moved into the past by hand
    from sqlalchemy import update

    from mailbastion.directory.portal_models import PortalSession
    from mailbastion.portal.keys import token_hash

    h = token_hash(client.cookies.get("__Host-mb_session"))
    assert digest(h) is not None
    old = runner.ctx.now() - dt.timedelta(minutes=runner.settings.portal.session_idle_minutes + 1)
    with runner.ctx.directory.engine.begin() as conn:
        conn.execute(update(PortalSession.__table__).where(PortalSession.__table__.c.token_hash == h)
                     .values(last_seen_at=old))
    r = client.get("/my/account")
    assert r.status_code == 303 and "done=expired" in r.headers["location"]
    client = signed_in(site, USER)
    h = token_hash(client.cookies.get("__Host-mb_session"))
    with runner.ctx.directory.engine.begin() as conn:
        conn.execute(update(PortalSession.__table__).where(PortalSession.__table__.c.token_hash == h)
                     .values(expires_at=runner.ctx.now() - dt.timedelta(seconds=1)))
    assert client.get("/my/account").status_code == 303


def test_every_sign_in_and_admin_action_is_audited(site: Any) -> None:
    _, runner, _ = site
    with closing(signed_in(site, ADMIN)) as admin:
        token = csrf_of(admin.get("/admin/accounts").text)
        admin.post("/admin/accounts", data={"csrf": token, "address": "audited@example.test", "reason": "joiner 7"})
        page = admin.get("/admin/accounts/audited@example.test")
        admin.post("/admin/accounts/audited@example.test/alias-add",
                   data={"csrf": csrf_of(page.text), "alias": "aud@example.test", "reason": "r"})
        admin.post("/admin/accounts/audited@example.test/leave",
                   data={"csrf": csrf_of(page.text), "date": "2099-01-31", "reason": "leaver"})
    events = runner.ctx.audit.events(limit=30)
    mine = [(e.action, e.subject) for e in events if e.actor == f"portal:{ADMIN}"]
    assert ("portal.signin", ADMIN) in mine
    assert ("account.added", "audited@example.test") in mine
    assert ("alias.added", "aud@example.test") in mine
    assert ("account.dates_changed", "audited@example.test") in mine
    assert runner.ctx.audit.verify().ok


def test_enrolment_link_works_once(site: Any) -> None:
    d, runner, _ = site
    d.mb("account", "add", "joiner@example.test")
    out = d.mb("account", "enrol-link", "joiner@example.test", "--reason", "HR-1")
    url = out.strip().splitlines()[-1]
    path = url.split(runner.url, 1)[1]
    with http(runner, d) as client:
        page = client.get(path)
        assert page.status_code == 200 and "joiner@example.test" in page.text
        r = client.post(path, data={"csrf": csrf_of(page.text), "password": "short", "password_again": "short"})
        assert r.status_code == 400
        r = client.post(path, data={"csrf": csrf_of(page.text), "password": "A-new-password-42",
                                    "password_again": "A-new-password-42"})
        assert r.status_code == 200 and "Password set" in r.text
        assert client.get(path).status_code == 404
        assert client.post(path, data={"csrf": csrf_of(page.text), "password": "x" * 14,
                                       "password_again": "x" * 14}).status_code == 404
    assert sign_in(http(runner, d), "joiner@example.test", password="A-new-password-42").status_code == 303


def test_public_endpoints(site: Any) -> None:
    d, runner, _ = site
    with http(runner, d) as client:
        r = client.get("/.well-known/mta-sts.txt")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        host = runner.settings.server.hostname
        assert r.text == f"version: STSv1\r\nmode: testing\r\nmx: {host}\r\nmax_age: 604800\r\n"
        r = client.get("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a@example.test")
        assert r.status_code == 200 and "<username>a@example.test</username>" in r.text
        assert client.get("/mail/config-v1.1.xml").status_code == 404  # no address, no document
        request = (b'<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/'
                   b'outlook/requestschema/2006"><Request><EMailAddress>b@example.test</EMailAddress></Request>'
                   b'</Autodiscover>')
        r = client.post("/autodiscover/autodiscover.xml", content=request)
        assert r.status_code == 200 and "<EMailAddress>b@example.test</EMailAddress>" in r.text
        bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><x>&b;</x>'
        assert client.post("/autodiscover/autodiscover.xml", content=bomb).status_code == 400  # defusedxml
        assert client.get("/l/nothing/t0k3n").status_code == 404
        assert client.get("/l/spring-sale/wrong").status_code == 404
        r = client.get("/l/spring-sale/t0k3n")
        assert r.status_code == 200 and "&lt;b&gt;t0k3n&lt;/b&gt;" in r.text and "<b>t0k3n" not in r.text


def test_app_passwords_through_the_port(site: Any) -> None:
    with closing(signed_in(site, USER)) as client:
        page = client.get("/my/app-passwords")
        assert page.status_code == 200 and "None." in page.text
        r = client.post("/my/app-passwords/create", data={"csrf": csrf_of(page.text), "name": "phone"})
        assert r.status_code == 200
        found = re.search(r'<code class="secret">([^<]+)</code>', r.text)
        assert found, r.text  # shown once, and it is the directory's: it logs in as the user
        secret = html.unescape(found.group(1))
        directory = site[1].ctx.directory
        assert directory.verify_login(USER, secret).ok and not directory.verify_login(OTHER, secret).ok
        r = client.post("/my/app-passwords/revoke", data={"csrf": csrf_of(page.text), "name": "phone"})
        assert r.status_code == 303 and "None." in client.get("/my/app-passwords").text
        assert not directory.verify_login(USER, secret).ok


def test_changing_my_password_ends_my_other_sessions(site: Any) -> None:
    other = signed_in(site, "dave@example.test")
    with closing(signed_in(site, "dave@example.test")) as client:
        page = client.get("/my/account")
        r = client.post("/my/account", data={"csrf": csrf_of(page.text), "current": "wrong",
                                             "password": "N3w-password-1234", "password_again": "N3w-password-1234"})
        assert r.status_code == 400
        r = client.post("/my/account", data={"csrf": csrf_of(page.text), "current": PASSWORD,
                                             "password": PASSWORD, "password_again": PASSWORD})
        assert r.status_code == 303 and client.get("/my/account").status_code == 200
    assert other.get("/my/account").status_code == 303


def test_a_confidential_message_is_picked_up_once_with_its_code(site: Any) -> None:
    from mailbastion.crypto.pickup import PickupStore

    d, runner, _ = site
    secret = b"From: ceo@example.test\r\nTo: partner@outside.example\r\nSubject: [confidential] Q4\r\n\r\nFigures.\r\n"
    ticket = PickupStore.from_settings(runner.settings).deposit(secret, recipient="partner@outside.example",
                                                                 sender="ceo@example.test")
    path = f"/pickup/{ticket.token}"
    with http(runner, d) as client:  # no session: the recipient is outside
        page = client.get(path)
        assert page.status_code == 200 and "One-time code" in page.text and b"Figures" not in page.content
        assert client.post(path, data={"code": ticket.code}).status_code == 403  # no CSRF token
        wrong = client.post(path, data={"csrf": csrf_of(page.text), "code": "AAAAA-AAAAA"})
        assert wrong.status_code == 400 and "attempt(s) left" in wrong.text
        r = client.post(path, data={"csrf": csrf_of(page.text), "code": ticket.code})
        assert r.status_code == 200 and r.content == secret
        assert r.headers["content-type"].startswith("message/rfc822") and "attachment" in r.headers["content-disposition"]
        again = client.post(path, data={"csrf": csrf_of(page.text), "code": ticket.code})
        assert again.status_code == 404  # opened once: gone
