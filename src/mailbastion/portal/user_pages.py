"""Pages of the signed-in person: their account (change the password, see the second factor) and their app
passwords (when the directory has them: issue 11; until then the page says so).

    GET/POST /my/account                      change my password (the current one first)
    GET      /my/app-passwords                my app passwords
    POST     /my/app-passwords/create|revoke  a new one (shown once) / revoke one
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbastion.directory.errors import DirectoryError
from mailbastion.portal.auth import Principal, require
from mailbastion.portal.render import page
from mailbastion.portal.signin import start_session

__all__ = ["app_password_action", "app_passwords", "my_account"]


@require()
async def my_account(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    facts = await asyncio.to_thread(ctx.store.facts, who.address)
    info = await asyncio.to_thread(ctx.directory.account, who.address)
    error = ""
    if request.method == "POST":
        form = request.state.form
        current, new, again = (str(form.get(k, "")) for k in ("current", "password", "password_again"))
        if not await asyncio.to_thread(ctx.directory.verify_password, who.address, current):
            error = "The current password is not right."
        elif not hmac.compare_digest(new, again):
            error = "The two new passwords differ."
        else:
            try:
                await asyncio.to_thread(ctx.directory.set_password, who.address, new, who.actor, "changed in the portal")
            except DirectoryError as exc:
                error = f"Choose a longer password: {exc}."
            else:
                # Every session ends (one left open elsewhere may be why the password changes); this one
                # continues under a new token.
                await asyncio.to_thread(ctx.store.end_sessions, who.address)
                return await start_session(request, who.address, who.role, mfa_done=True,
                                           target="/my/account?done=password")
    return page(request, "my_account.html", 400 if error else 200, facts=facts, info=info, error=error,
                totp_required=who.role in ctx.settings.portal.totp_roles)


@require()
async def app_passwords(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    provider = ctx.app_passwords
    items = await asyncio.to_thread(provider.list, who.address) if provider is not None else []
    return page(request, "app_passwords.html", available=provider is not None, items=items, created="", error="")


@require()
async def app_password_action(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    provider = ctx.app_passwords
    if provider is None:
        return RedirectResponse("/my/app-passwords", status_code=303)
    name = str(request.state.form.get("name", "")).strip()[:64]
    created, error = "", ""
    try:
        if request.path_params["action"] == "create":
            if not name:
                raise ValueError("give the app password a name (the device or program that uses it)")
            created = await asyncio.to_thread(lambda: provider.create(who.address, name, by=who.actor))
        else:
            await asyncio.to_thread(lambda: provider.revoke(who.address, name, by=who.actor))
            return RedirectResponse("/my/app-passwords?done=app_password_revoked", status_code=303)
    except (DirectoryError, ValueError, KeyError) as exc:
        error = str(exc)
    items = await asyncio.to_thread(provider.list, who.address)
    return page(request, "app_passwords.html", 400 if error else 200, available=True, items=items, created=created,
                created_name=name, error=error)
