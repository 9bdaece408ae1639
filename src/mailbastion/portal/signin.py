"""Signing in and out: directory password, then TOTP for the roles that need it (or whoever enrolled one).

    GET/POST /signin             address + password (+ the form's CSRF token, bound to a pre-session cookie)
    GET/POST /signin/totp        the code, for a session whose password is checked
    GET/POST /signin/totp-enrol  first sign-in of a role that needs TOTP: the otpauth URI, its QR code, a code
    GET/POST /signin/webauthn    a registered security key instead of the code (portal/webauthn.py)
    POST     /signout

Failures are counted per account (lockout in the directory, audited) and per client address (429). A
failure never says which part was wrong, nor whether the account exists. Each complete sign-in, each
failure and each sign-out is an audit record. The session token is replaced once the second factor is
done, so a token seen before it (fixation) is worth nothing afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbastion import metrics
from mailbastion.portal import totp
from mailbastion.portal.auth import (
    PRE_COOKIE,
    Principal,
    client_of,
    read_form,
    require,
    safe_next,
    session_cookie,
)
from mailbastion.portal.keys import new_token, token_hash
from mailbastion.portal.render import page

__all__ = ["signin_form", "signin_submit", "signout", "start_session", "totp_enrol", "totp_form"]

FAILED = "Sign-in failed. Check the address and password. After repeated failures sign-in pauses for a while."


def _pre_token(request: Request) -> tuple[str, bool]:
    value = request.cookies.get(PRE_COOKIE)
    if value and 20 <= len(value) <= 64:
        return value, False
    return new_token(), True


def _signin_page(request: Request, error: str = "", status: int = 200, address: str = "") -> Response:
    ctx = request.app.state.ctx
    pre, fresh = _pre_token(request)
    response = page(request, "signin.html", status, error=error, address=address,
                    form_token=ctx.keys.mac("signin", pre), next=safe_next(request.query_params.get("next")))
    if fresh:
        response.set_cookie(PRE_COOKIE, pre, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def signin_form(request: Request) -> Response:
    return _signin_page(request)


async def start_session(request: Request, address: str, role: str, *, mfa_done: bool, target: str) -> Response:
    ctx = request.app.state.ctx
    if mfa_done:  # a complete sign-in: the acceptable use policy first, when it is not accepted yet
        from mailbastion.portal.aup_pages import after_signin

        target = await after_signin(ctx, address, target)
    token = new_token()
    hours = dt.timedelta(hours=ctx.settings.portal.session_absolute_hours)
    await asyncio.to_thread(ctx.store.create_session, token_hash(token), address, role, new_token(),
                            mfa_done=mfa_done, expires_at=ctx.now() + hours, client=client_of(request))
    response = RedirectResponse(target, status_code=303)
    session_cookie(response, token)
    return response


async def signin_submit(request: Request) -> Response:
    ctx = request.app.state.ctx
    form = await read_form(request)
    pre = request.cookies.get(PRE_COOKIE, "")
    sent = str(form.get("csrf", ""))
    if not pre or not hmac.compare_digest(sent, ctx.keys.mac("signin", pre)):
        return page(request, "notice.html", 403, title="Form refused",
                    text="This sign-in form has expired or was not sent from this portal. Reload the page.")
    client = client_of(request)
    address = str(form.get("address", "")).strip()[:320]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    if ctx.throttle.blocked(client):
        return _signin_page(request, "Too many failed sign-ins from your address. Wait a few minutes.", 429)
    from mailbastion.core.address import AddressError

    try:
        facts = await asyncio.to_thread(ctx.store.facts, address)
    except (AddressError, ValueError):
        facts = None
    locked = facts is not None and facts.locked_until is not None and facts.locked_until > ctx.now()
    ok = await asyncio.to_thread(ctx.directory.verify_password, address, password) if facts else False
    if not ok or locked or facts is None:
        metrics.auth_failure("portal", "password")
        ctx.throttle.failed(client)
        if facts is not None and not locked:
            p = ctx.settings.portal
            await asyncio.to_thread(ctx.store.record_failure, address,
                                    window=dt.timedelta(minutes=p.login_window_minutes),
                                    max_failures=p.login_max_failures, lockout=dt.timedelta(minutes=p.lockout_minutes))
        await asyncio.to_thread(ctx.audit.record, "portal.signin_failed", actor="portal",
                                subject=(facts.address if facts else address[:320]) or "-",
                                reason="locked" if locked else "wrong address or password",
                                details={"client": client})
        return _signin_page(request, FAILED, 401, address=address)
    await asyncio.to_thread(ctx.store.clear_failures, facts.address)
    needs_totp = facts.role in ctx.settings.portal.totp_roles or facts.totp_confirmed
    if not needs_totp:
        await asyncio.to_thread(ctx.audit.record, "portal.signin", actor=f"portal:{facts.address}",
                                subject=facts.address, details={"client": client, "role": facts.role, "mfa": "none"})
        return await start_session(request, facts.address, facts.role, mfa_done=True, target=target)
    step = "/signin/totp" if facts.totp_confirmed else "/signin/totp-enrol"
    return await start_session(request, facts.address, facts.role, mfa_done=False, target=step)


async def _complete(request: Request, who: Principal, how: str) -> Response:
    """The second factor is done: a new session token with mfa_done, the old one gone."""
    ctx = request.app.state.ctx
    await asyncio.to_thread(ctx.store.end_session, who.token_hash)
    await asyncio.to_thread(ctx.audit.record, "portal.signin", actor=who.actor, subject=who.address,
                            details={"client": client_of(request), "role": who.role, "mfa": how})
    return await start_session(request, who.address, who.role, mfa_done=True, target="/")


async def _fail_code(request: Request, who: Principal, *, reason: str = "wrong TOTP code",
                     factor: str = "totp") -> None:
    ctx = request.app.state.ctx
    p = ctx.settings.portal
    ctx.throttle.failed(client_of(request))
    metrics.auth_failure("portal", factor)
    locked = await asyncio.to_thread(ctx.store.record_failure, who.address,
                                     window=dt.timedelta(minutes=p.login_window_minutes),
                                     max_failures=p.login_max_failures, lockout=dt.timedelta(minutes=p.lockout_minutes))
    await asyncio.to_thread(ctx.audit.record, "portal.signin_failed", actor="portal", subject=who.address,
                            reason=reason, details={"client": client_of(request)})
    if locked is not None:
        await asyncio.to_thread(ctx.store.end_session, who.token_hash)


@require(mfa=False)
async def totp_form(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    facts = await asyncio.to_thread(ctx.store.facts, who.address)
    if not facts.totp_confirmed:
        return RedirectResponse("/signin/totp-enrol", status_code=303)
    from mailbastion.directory.webauthn_keys import SecurityKeys

    has_keys = bool(await asyncio.to_thread(SecurityKeys(ctx.directory).list, who.address))
    if request.method == "GET":
        return page(request, "totp.html", error="", has_keys=has_keys)
    code = str(request.state.form.get("code", ""))
    secret = ctx.keys.open(facts.totp_secret, facts.address).decode()
    step = totp.matching_step(secret, code, ctx.totp_clock())
    if step is None or not await asyncio.to_thread(ctx.store.use_totp_step, who.address, step):
        await _fail_code(request, who)
        return page(request, "totp.html", 401, error="That code did not work. Codes work once; wait for the next.",
                    has_keys=has_keys)
    return await _complete(request, who, "totp")


@require(mfa=False)
async def totp_enrol(request: Request) -> Response:
    """Enrol a TOTP secret for a signed-in (password only) session whose account has none confirmed."""
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    facts = await asyncio.to_thread(ctx.store.facts, who.address)
    if facts.totp_confirmed:
        return RedirectResponse("/signin/totp", status_code=303)
    if facts.totp_secret is None:
        sealed = ctx.keys.seal(totp.new_secret().encode(), facts.address)
        await asyncio.to_thread(ctx.store.begin_totp, facts.address, sealed)
        facts = await asyncio.to_thread(ctx.store.facts, who.address)
    secret = ctx.keys.open(facts.totp_secret, facts.address).decode()
    uri = totp.provisioning_uri(secret, facts.address, issuer=ctx.settings.server.hostname)
    error, status = "", 200
    if request.method == "POST":
        step = totp.matching_step(secret, str(request.state.form.get("code", "")), ctx.totp_clock())
        if step is not None:
            await asyncio.to_thread(ctx.store.confirm_totp, who.address, step, by=who.actor)
            return await _complete(request, who, "totp-enrolled")
        await _fail_code(request, who)
        error, status = "That code did not match. Check the time on your phone and try the next code.", 401
    return page(request, "totp_enrol.html", status, uri=uri, secret=secret, qr=totp.qr_data_uri(uri), error=error)


@require(mfa=False)
async def signout(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    await asyncio.to_thread(ctx.store.end_session, who.token_hash)
    await asyncio.to_thread(ctx.audit.record, "portal.signout", actor=who.actor, subject=who.address)
    response = RedirectResponse("/signin?done=signed_out", status_code=303)
    session_cookie(response, None)
    return response
