"""Enrolment through a one-time link (`mailbastion account enrol-link ADDRESS`): set a password, then,
when the account's role needs it, TOTP (the sign-in's enrolment step follows at once).

    GET  /enrol/<token>    the form (the token is checked, not spent)
    POST /enrol/<token>    spends the token atomically and sets the password; audited by the directory

The link is the credential: it works once, expires (`portal.enrol_link_hours`), and only its SHA-256 is
stored. The form's CSRF token is derived from the link token, so another site cannot post it.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from mailbastion.directory.errors import DirectoryError
from mailbastion.portal.auth import client_of, read_form
from mailbastion.portal.keys import token_hash
from mailbastion.portal.render import page
from mailbastion.portal.signin import start_session

__all__ = ["enrol"]

GONE = ("This enrolment link is not valid any more: it was used, replaced by a newer one, or expired. "
        "Ask your administrator for a new link.")


async def enrol(request: Request) -> Response:
    ctx = request.app.state.ctx
    token = request.path_params["token"]
    digest = token_hash(token)
    link = await asyncio.to_thread(ctx.store.enrol_token, digest)
    if link is None:
        return page(request, "notice.html", 404, title="Link not valid", text=GONE)
    form_token = ctx.keys.mac("enrol", digest)
    if request.method == "GET":
        return page(request, "enrol.html", address=link.address, form_token=form_token, error="")
    form = await read_form(request)
    if not hmac.compare_digest(str(form.get("csrf", "")), form_token):
        return page(request, "notice.html", 403, title="Form refused", text="Reload the enrolment page and try again.")
    password, again = str(form.get("password", "")), str(form.get("password_again", ""))
    error = ""
    if password != again:
        error = "The two passwords differ."
    else:
        from mailbastion.directory.passwords import check_strength

        try:
            check_strength(password)
        except DirectoryError as exc:
            error = f"Choose a longer password: {exc}."
    if error:
        return page(request, "enrol.html", 400, address=link.address, form_token=form_token, error=error)
    address = await asyncio.to_thread(ctx.store.use_enrol_token, digest)
    if address is None:
        return page(request, "notice.html", 404, title="Link not valid", text=GONE)
    await asyncio.to_thread(ctx.directory.set_password, address, password, f"portal:{address}",
                            "enrolment link")
    await asyncio.to_thread(ctx.store.end_sessions, address)
    facts = await asyncio.to_thread(ctx.store.facts, address)
    info = await asyncio.to_thread(ctx.directory.account, address)
    if info is None or not info.is_active:
        return page(request, "notice.html", title="Password set",
                    text="Your password is set. Your account is not active yet; you can sign in from its start date.")
    if facts.role in ctx.settings.portal.totp_roles and not facts.totp_confirmed:
        # The password was just proven by setting it: go straight on to the second factor.
        await asyncio.to_thread(ctx.audit.record, "portal.enrolled", actor=f"portal:{address}", subject=address,
                                details={"client": client_of(request), "next": "totp"})
        return await start_session(request, address, facts.role, mfa_done=False, target="/signin/totp-enrol")
    await asyncio.to_thread(ctx.audit.record, "portal.enrolled", actor=f"portal:{address}", subject=address,
                            details={"client": client_of(request)})
    return page(request, "notice.html", title="Password set", text="Your password is set. You can now sign in.",
                link="/signin")
