"""Who is signed in: the session cookie, idle and absolute expiry, the account still active, the role, and
the CSRF token of every form.

    @require(ADMIN, HELPDESK)              # a page for these roles; POSTs must carry the session's CSRF token
    async def accounts(request): ...       # request.state.principal, request.state.form (POST)

The session cookie is `__Host-mb_session`: Secure, HttpOnly, SameSite=Strict, Path=/, no Domain (the
`__Host-` prefix makes browsers enforce exactly that, RFC 6265bis §4.1.3.2). The browser holds a random
token; the directory holds its SHA-256. On every request the session is read with its account's state in
one query: a suspended or departed account's sessions end at its next request, whoever suspended it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbastion.portal.keys import token_hash
from mailbastion.portal.render import page

__all__ = ["PRE_COOKIE", "SESSION_COOKIE", "Principal", "client_of", "read_form", "require", "safe_next",
           "session_cookie"]

SESSION_COOKIE = "__Host-mb_session"
PRE_COOKIE = "__Host-mb_pre"  # binds the sign-in form's CSRF token to this browser before any session
TOUCH_EVERY = dt.timedelta(seconds=60)  # last_seen is written at most this often (idle expiry's grain)
MAX_FORM_FIELDS = 64

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Principal:
    address: str
    role: str
    csrf: str
    token_hash: str
    complete: bool = True  # False: the password is checked, the second factor not yet

    @property
    def actor(self) -> str:
        """How the audit log names what this person does here."""
        return f"portal:{self.address}"


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in; anything else (another site, //host) becomes "/"."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and "\n" not in value:
        return value
    return "/"


def session_cookie(response: Response, token: str | None) -> None:
    if token is None:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    else:
        response.set_cookie(SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")


def to_signin(request: Request, done: str = "") -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = "/signin?next=" + quote(target, safe="") + (f"&done={done}" if done else "")
    response = RedirectResponse(url, status_code=303)
    session_cookie(response, None)
    return response


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=64 * 1024)


async def load_principal(request: Request, *, need_mfa: bool = True) -> Principal | Response:
    """The signed-in person, or the response that sends them to sign in (or to their second factor)."""
    ctx = request.app.state.ctx
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return to_signin(request)
    digest = token_hash(token)
    facts = await asyncio.to_thread(ctx.store.session, digest)
    if facts is None:
        return to_signin(request)
    now = ctx.now()
    idle = dt.timedelta(minutes=ctx.settings.portal.session_idle_minutes)
    if facts.expires_at <= now or now - facts.last_seen_at > idle:
        await asyncio.to_thread(ctx.store.end_session, digest)
        return to_signin(request, "expired")
    if not facts.account_active:
        ended = await asyncio.to_thread(ctx.store.end_sessions, facts.address)
        await asyncio.to_thread(ctx.audit.record, "portal.session_ended", actor="portal", subject=facts.address,
                                reason="account no longer active", details={"sessions": ended})
        return to_signin(request, "expired")
    if need_mfa and not facts.mfa_done:
        return RedirectResponse("/signin/totp", status_code=303)
    if now - facts.last_seen_at > TOUCH_EVERY:
        await asyncio.to_thread(ctx.store.touch_session, digest)
    return Principal(facts.address, facts.role, facts.csrf_token, digest, facts.mfa_done)


def csrf_ok(form: FormData, principal: Principal) -> bool:
    sent = form.get("csrf")
    return isinstance(sent, str) and hmac.compare_digest(sent, principal.csrf)


def require(*roles: str, mfa: bool = True) -> Callable[[Endpoint], Endpoint]:
    """Guard a page: a session (complete with its second factor unless `mfa=False`), one of `roles` (any
    role when none are given) and, for a POST, the session's CSRF token in the form."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            who = await load_principal(request, need_mfa=mfa)
            if isinstance(who, Response):
                return who
            request.state.principal = who
            if roles and who.role not in roles:
                return page(request, "notice.html", 403, title="Not allowed",
                            text="Your portal role does not give access to this page.")
            if request.method == "POST":
                form = await read_form(request)
                if not csrf_ok(form, who):
                    return page(request, "notice.html", 403, title="Form refused",
                                text="This form was not sent from a page of this portal (its security token is "
                                     "missing or wrong). Go back, reload the page and try again.")
                request.state.form = form
            return await endpoint(request)

        return guarded

    return wrap
