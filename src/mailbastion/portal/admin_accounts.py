"""Accounts, for administrators and the helpdesk: list and search (50 a page), create, join and leave dates,
suspend and reactivate, aliases, one-time enrolment links; for administrators also portal roles, TOTP
reset and unlocking. Every change goes through the directory, which audits it with `portal:<who>` as actor.

The helpdesk manages plain users only: an account with a portal role (administrator or helpdesk) is out of
its reach, so nobody at the helpdesk can take over an administrator by a password link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbastion.core.address import AddressError
from mailbastion.directory.errors import DirectoryError
from mailbastion.directory.models import AccountState
from mailbastion.directory.portal_models import ROLES
from mailbastion.portal.auth import Principal, require
from mailbastion.portal.context import make_enrol_link
from mailbastion.portal.render import ADMIN, HELPDESK, page

__all__ = ["account_action", "account_detail", "accounts"]

PAGE = 50
STATES = [s.value for s in AccountState]
ACTIONS = ("state", "leave", "alias-add", "alias-remove", "enrol-link", "role", "totp-reset", "unlock")
ADMIN_ONLY = ("role", "totp-reset")


def _where(address: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/accounts/{quote(address)}?done={done}", status_code=303)


@require(ADMIN, HELPDESK)
async def accounts(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    error = ""
    if request.method == "POST":
        form = request.state.form
        address = str(form.get("address", "")).strip()
        state = AccountState.PENDING if form.get("pending") else AccountState.ACTIVE
        try:
            await asyncio.to_thread(ctx.directory.add_account, address, None, who.actor,
                                    str(form.get("reason", "")), state=state)
            created = await asyncio.to_thread(ctx.directory.account, address)
            assert created is not None
            return _where(created.address, "created")
        except (AddressError, DirectoryError, ValueError) as exc:
            error = str(exc)
    q = request.query_params
    query, state_filter, after = q.get("q", "")[:200], q.get("state", ""), q.get("after", "")[:320]
    state_filter = state_filter if state_filter in STATES else ""
    rows = await asyncio.to_thread(ctx.store.page_accounts, query=query, state=state_filter or None, after=after,
                                   limit=PAGE + 1)
    total = await asyncio.to_thread(ctx.store.count_accounts, query=query, state=state_filter or None)
    more = rows[PAGE].info.address if len(rows) > PAGE else ""
    return page(request, "accounts.html", 400 if error else 200, rows=rows[:PAGE], total=total, query=query,
                state=state_filter, states=STATES, next_after=rows[PAGE - 1].info.address if more else "",
                error=error)


async def _detail_context(ctx: Any, address: str) -> dict[str, Any] | None:
    directory = ctx.directory
    store = ctx.store
    info = await asyncio.to_thread(directory.account, address)
    if info is None:
        return None
    facts = await asyncio.to_thread(store.facts, info.address)
    aliases = [a for a, t in await asyncio.to_thread(directory.list_aliases) if t == info.address]
    now = directory.now()
    return {"info": info, "facts": facts, "aliases": aliases, "roles": ROLES, "states": STATES,
            "locked": facts.locked_until is not None and facts.locked_until > now}


@require(ADMIN, HELPDESK)
async def account_detail(request: Request) -> Response:
    ctx = request.app.state.ctx
    details = await _detail_context(ctx, request.path_params["address"])
    if details is None:
        return page(request, "notice.html", 404, title="No such account", text="There is no account with that address.")
    return page(request, "account.html", error="", **details)


@require(ADMIN, HELPDESK)
async def account_action(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    action = request.path_params["action"]
    form = request.state.form
    details = await _detail_context(ctx, request.path_params["address"])
    if details is None or action not in ACTIONS:
        return page(request, "notice.html", 404, title="Not found", text="No such account or action.")
    info, facts = details["info"], details["facts"]
    address = info.address
    if who.role != ADMIN and (action in ADMIN_ONLY or facts.role != "user"):
        return page(request, "notice.html", 403, title="Not allowed",
                    text="The helpdesk manages user accounts only; ask an administrator.")
    reason = str(form.get("reason", "")).strip()[:500]
    d, s = ctx.directory, ctx.store
    try:
        if action == "state":
            state = AccountState(str(form.get("state", "")))
            if not reason:
                raise ValueError("give a reason (it is kept in the audit log)")
            await asyncio.to_thread(d.set_state, address, state, who.actor, reason)
            if state is not AccountState.ACTIVE:
                await asyncio.to_thread(s.end_sessions, address)
            return _where(address, "state")
        if action == "leave":
            day = dt.date.fromisoformat(str(form.get("date", "")))
            at = dt.datetime.combine(day, dt.time(), dt.UTC)
            if not reason:
                raise ValueError("give a reason (it is kept in the audit log)")
            await asyncio.to_thread(lambda: d.deactivate(address, who.actor, reason, at=at))
            return _where(address, "leave")
        if action == "alias-add":
            await asyncio.to_thread(d.add_alias, str(form.get("alias", "")).strip(), address, who.actor, reason)
            return _where(address, "alias_added")
        if action == "alias-remove":
            await asyncio.to_thread(d.remove_alias, str(form.get("alias", "")).strip(), address, who.actor, reason)
            return _where(address, "alias_removed")
        if action == "enrol-link":
            url = await asyncio.to_thread(lambda: make_enrol_link(ctx.settings, s, address, by=who.actor, reason=reason))
            return page(request, "link_once.html", address=address, url=url,
                        hours=ctx.settings.portal.enrol_link_hours)
        if action == "role":
            await asyncio.to_thread(lambda: s.set_role(address, str(form.get("role", "")), by=who.actor, reason=reason))
            return _where(address, "role")
        if action == "totp-reset":
            await asyncio.to_thread(lambda: s.reset_totp(address, by=who.actor, reason=reason))
            return _where(address, "totp_reset")
        await asyncio.to_thread(lambda: s.unlock(address, by=who.actor, reason=reason))
        return _where(address, "unlocked")
    except (AddressError, DirectoryError, ValueError) as exc:
        return page(request, "account.html", 400, error=str(exc), **details)
