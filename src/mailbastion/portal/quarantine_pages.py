"""The quarantine in the portal: administrators search everything; each user sees what was held for them.

    GET  /admin/quarantine?q=&malware=&before=   search, 50 a page, newest first (the index, keyset pages)
    GET  /admin/quarantine/<id>                  the message as inert text: headers, text parts, every symbol
    POST /admin/quarantine/<id>/release          with a reason; malware asks a second, explicit confirmation
    POST /admin/quarantine/<id>/delete           with a reason
    GET  /my/quarantine, /my/quarantine/<id>     the signed-in person's own held mail
    POST /my/quarantine/<id>/release             to themselves only, and never what an engine called malware

Releases and deletions go through `QuarantineRelease` (audited before they happen, with the verdict; a
recipient who cannot receive refuses the release rather than bouncing it to the sender).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbastion.core.address import AddressError, parse_address
from mailbastion.portal.auth import Principal, require
from mailbastion.portal.message_view import inert_view
from mailbastion.portal.render import ADMIN, page
from mailbastion.quarantine.index import mailbox_key
from mailbastion.quarantine.release import ReleaseRefused
from mailbastion.quarantine.store import UnknownQuarantineId

__all__ = ["admin_action", "admin_list", "admin_message", "my_list", "my_message", "my_release"]

PAGE = 50


async def _list(request: Request, *, recipient: str | None, template: str) -> Response:
    ctx = request.app.state.ctx
    q = request.query_params
    text, before = q.get("q", "")[:200], q.get("before", "")[:40] or None
    malware = {"yes": True, "no": False}.get(q.get("malware", ""))
    await asyncio.to_thread(ctx.qindex.sync)
    result = await asyncio.to_thread(lambda: ctx.qindex.search(text, recipient=recipient, malware=malware,
                                                               before=before, limit=PAGE))
    total = await asyncio.to_thread(lambda: ctx.qindex.count(text, recipient=recipient, malware=malware))
    return page(request, template, entries=result.entries, next_before=result.next_before or "", total=total,
                query=text, malware=q.get("malware", ""), first=before is None)


async def _entry(request: Request) -> tuple[object, bytes] | None:
    ctx = request.app.state.ctx
    try:
        entry = await asyncio.to_thread(ctx.quarantine.get, request.path_params["qid"])
        raw = await asyncio.to_thread(ctx.quarantine.message, entry.id)
    except UnknownQuarantineId:
        return None
    return entry, raw


def _gone(request: Request) -> Response:
    return page(request, "notice.html", 404, title="Not in the quarantine",
                text="No held message has that id: it may have been released or deleted meanwhile.")


@require(ADMIN)
async def admin_list(request: Request) -> Response:
    return await _list(request, recipient=None, template="quarantine_admin.html")


@require(ADMIN)
async def admin_message(request: Request) -> Response:
    found = await _entry(request)
    if found is None:
        return _gone(request)
    entry, raw = found
    view = await asyncio.to_thread(inert_view, raw)
    return page(request, "quarantine_message.html", entry=entry, view=view, admin=True, error="")


@require(ADMIN)
async def admin_action(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    form = request.state.form
    found = await _entry(request)
    if found is None:
        return _gone(request)
    entry, raw = found
    reason = str(form.get("reason", "")).strip()[:500]
    action = request.path_params["action"]
    error = ""
    if not reason:
        error = "Give a reason: it is kept in the audit log."
    elif action == "delete":
        await ctx.release.delete(entry.id, actor=who.actor, reason=reason)  # type: ignore[attr-defined]
        await asyncio.to_thread(ctx.qindex.sync)
        return RedirectResponse("/admin/quarantine?done=deleted", status_code=303)
    elif action == "release":
        recipients = None
        to = str(form.get("to", "")).strip()
        try:
            recipients = [parse_address(a.strip(), allow_utf8=True) for a in to.split(",") if a.strip()] or None
        except AddressError as exc:
            error = f"Not an address: {exc}"
        if not error and entry.is_malware and form.get("confirm_malware") != "yes":  # type: ignore[attr-defined]
            return page(request, "confirm_release.html", entry=entry, reason=reason, to=to)
        if not error:
            try:
                await ctx.release.release(entry.id, actor=who.actor, reason=reason,  # type: ignore[attr-defined]
                                          force=entry.is_malware, recipients=recipients)  # type: ignore[attr-defined]
            except ReleaseRefused as exc:
                error = f"Release refused: {exc}"
            else:
                await asyncio.to_thread(ctx.qindex.sync)
                return RedirectResponse("/admin/quarantine?done=released", status_code=303)
    else:
        return _gone(request)
    view = await asyncio.to_thread(inert_view, raw)
    return page(request, "quarantine_message.html", 400, entry=entry, view=view, admin=True, error=error)


def _is_mine(entry: object, who: Principal, delimiter: str) -> bool:
    return any(mailbox_key(r, delimiter) == who.address for r in entry.recipients)  # type: ignore[attr-defined]


@require()
async def my_list(request: Request) -> Response:
    who: Principal = request.state.principal
    return await _list(request, recipient=who.address, template="quarantine_mine.html")


@require()
async def my_message(request: Request) -> Response:
    ctx = request.app.state.ctx
    found = await _entry(request)
    if found is None or not _is_mine(found[0], request.state.principal, ctx.settings.mailbox.recipient_delimiter):
        return _gone(request)  # someone else's mail is not in *your* quarantine: the same answer as none
    entry, raw = found
    view = await asyncio.to_thread(inert_view, raw)
    return page(request, "quarantine_message.html", entry=entry, view=view, admin=False, error="")


@require()
async def my_release(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    found = await _entry(request)
    if found is None or not _is_mine(found[0], who, ctx.settings.mailbox.recipient_delimiter):
        return _gone(request)
    entry, raw = found
    error = ""
    if entry.is_malware:  # type: ignore[attr-defined]
        error = "This message was held as malware: only an administrator can release it."
    elif len(entry.recipients) > 1:  # type: ignore[attr-defined]
        # A release removes the held copy; the other recipients' share of it must not go with it.
        error = "This message was held for several people: ask an administrator to release it."
    else:
        try:
            await ctx.release.release(entry.id, actor=who.actor, reason="released by its recipient",  # type: ignore[attr-defined]
                                      recipients=[parse_address(who.address)])
        except ReleaseRefused as exc:
            error = f"Release refused: {exc}"
        else:
            await asyncio.to_thread(ctx.qindex.sync)
            return RedirectResponse("/my/quarantine?done=released", status_code=303)
    view = await asyncio.to_thread(inert_view, raw)
    return page(request, "quarantine_message.html", 400, entry=entry, view=view, admin=False, error=error)
