"""Accounts, for administrators and the helpdesk: list and search (50 a page), create, join and leave dates,
suspend and reactivate, aliases, one-time enrolment links; for administrators also portal roles, TOTP
reset and unlocking. Every change goes through the directory, which audits it with `portal:<who>` as actor.

Join and leave dates go through the lifecycle code the command line uses (`mailbastion account start|leave`,
cli/lifecycle.py): `lifecycle.dates.set_dates` records the date (one `account.dates_changed` audit record),
and a date that has already come is applied at once by `lifecycle.transitions.start | leave` (an
`account.started | account.left` record: app passwords and portal sessions end, aliases are re-pointed or
reported, the leaver policy applies); a future date is applied by the internal role's scheduler on time.
Each account page shows its lifecycle state, its dates, the next scheduled transition (`next_transition`)
and what the leaver policy (`[lifecycle]`) will do with its mail.

The helpdesk manages plain users only: an account with a portal role (administrator or helpdesk) is out of
its reach, so nobody at the helpdesk can take over an administrator by a password link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
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

if TYPE_CHECKING:
    from mailbastion.config.sections.lifecycle import LifecycleSection
    from mailbastion.directory.store import AccountInfo, Directory

__all__ = ["NextStep", "account_action", "account_detail", "accounts", "leaver_policy_text", "next_transition",
           "set_leave", "set_start"]

PAGE = 50
STATES = [s.value for s in AccountState]
ACTIONS = ("state", "start", "leave", "leave-cancel", "alias-add", "alias-remove", "enrol-link", "role",
           "totp-reset", "unlock")
ADMIN_ONLY = ("role", "totp-reset")
# Notices of the lifecycle actions (render.NOTICES has the others); chosen by code, never text from the URL.
DATE_NOTICES = {
    "start": "The start date was set; the account is pending until then.",
    "started": "The start date has come: the account is active.",
    "left": "The leave date has passed: the account has left (its app passwords and portal sessions ended).",
    "leave_cancelled": "The leave date was removed.",
}
GONE = (AccountState.LEFT, AccountState.ARCHIVED, AccountState.DELETED, AccountState.DISABLED)


@dataclass(frozen=True, slots=True)
class NextStep:
    """The next thing the lifecycle scheduler will do to an account: `what` (a state, or an event such as
    "forwarding ends"), `at` (None: nothing is dated, e.g. a pending account awaiting approval), and
    `overdue` when the date has passed (the scheduler applies it at its next check)."""

    what: str
    at: dt.datetime | None
    overdue: bool = False

    def text(self) -> str:
        if self.at is None:
            return self.what
        when = f"{self.at:%Y-%m-%d %H:%M} UTC"
        return f"{self.what} on {when}" + (" (due: at the scheduler's next check)" if self.overdue else "")


def next_transition(info: AccountInfo, lc: LifecycleSection, now: dt.datetime, *,
                    forwarding: bool = False) -> NextStep | None:
    """What lifecycle/transitions.py `apply_due` will do next to this account, by the same dates and
    `[lifecycle]` periods; None when nothing is scheduled. `forwarding`: a leaver's forwarding alias exists."""
    state, day = info.state, dt.timedelta(days=1)

    def step(what: str, at: dt.datetime) -> NextStep:
        return NextStep(what, at, at <= now)

    if state is AccountState.PENDING:
        return step("active", info.start_at) if info.start_at else NextStep("active once an administrator "
                                                                            "approves it (no start date)", None)
    if state in (AccountState.ACTIVE, AccountState.SUSPENDED):
        return step("left", info.deactivate_at) if info.deactivate_at else None
    if state in (AccountState.LEFT, AccountState.DISABLED) and info.deactivated_at:
        archive = step("archived (mailbox exported, then removed)", info.deactivated_at + lc.archive_after_days * day)
        forward_end = info.deactivated_at + lc.forward_days * day
        return step("forwarding ends", forward_end) if forwarding and forward_end < archive.at else archive  # type: ignore[operator]
    if state is AccountState.ARCHIVED and info.archived_at:
        return step("deleted (archive removed, address reserved)", info.archived_at + lc.retention_days * day)
    if state is AccountState.DELETED and info.reserved_until:
        return NextStep("address free for a new account", info.reserved_until, info.reserved_until <= now)
    return None


def leaver_policy_text(info: AccountInfo, lc: LifecycleSection) -> str:
    """What `[lifecycle]` does with this account's mail and mailbox once it has left (the same policy
    `mailbastion account leave` announces)."""
    if lc.leaver_policy == "forward" and info.successor and lc.forward_days > 0:
        mail = f"forwarded to {info.successor} for {lc.forward_days} days, then refused (550 5.1.1)"
    else:
        mail = "refused (550 5.1.1)" + (f" naming {info.successor}" if info.successor else "")
        if lc.leaver_policy == "forward":
            mail += " (policy forward, but there is no successor to forward to)"
    return (f"{lc.leaver_policy}: after leaving, its mail is {mail}; app passwords and portal sessions end; "
            f"the mailbox is archived {lc.archive_after_days} days after leaving, the archive kept "
            f"{lc.retention_days} days, then the address is reserved for {lc.reserve_days} days")


def _when(form: Any, date_field: str = "date", time_field: str = "time") -> dt.datetime:
    """A date (YYYY-MM-DD) and an optional time (HH:MM), UTC, from a form; ValueError with a clear text."""
    text, clock = str(form.get(date_field, "")).strip(), str(form.get(time_field, "")).strip()
    try:
        day = dt.date.fromisoformat(text)
        at = dt.time.fromisoformat(clock) if clock else dt.time()
    except ValueError:
        raise ValueError(f"{text!r} {clock!r} is not a date (YYYY-MM-DD) and optional time (HH:MM)") from None
    return dt.datetime.combine(day, at.replace(tzinfo=None), dt.UTC)


def set_start(directory: Directory, address: str, when: dt.datetime, *, by: str, reason: str) -> bool:
    """What `mailbastion account start` does: record the start date; a date that has come starts a pending
    account now. True when the account became active."""
    from mailbastion.lifecycle.dates import set_dates
    from mailbastion.lifecycle.transitions import start

    set_dates(directory, address, start_at=when, by=by, reason=reason)
    info = directory.account(address)
    if info is not None and when <= directory.now() and info.state is AccountState.PENDING:
        start(directory, info.address, by=by)
        return True
    return False


def set_leave(directory: Directory, settings: Any, address: str, when: dt.datetime, successor: str | None, *,
              by: str, reason: str) -> bool:
    """What `mailbastion account leave` does: record the end date (and successor, when given); a date that
    has come makes the account leave now (lifecycle.transitions.leave). True when it has left."""
    from mailbastion.lifecycle.dates import KEEP, set_dates
    from mailbastion.lifecycle.transitions import LifecyclePolicy, leave

    info = directory.account(address)
    if info is None:
        raise DirectoryError(f"no account {address}")
    due = when <= directory.now()
    if due and info.state not in (AccountState.ACTIVE, AccountState.SUSPENDED):
        raise ValueError(f"{info.address} is {info.state.value}: only an active or suspended account can leave "
                         "now; give a later date or change its state first")
    set_dates(directory, info.address, end_at=when, successor=successor or KEEP, by=by, reason=reason)
    if due:
        leave(directory, info.address, LifecyclePolicy.from_settings(settings), by=by, reason=reason)
    return due


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
        starts = str(form.get("start", "")).strip()
        state = AccountState.PENDING if form.get("pending") or starts else AccountState.ACTIVE
        reason = str(form.get("reason", "")).strip()[:500]
        try:
            when = _when(form, "start", "start_time") if starts else None
            await asyncio.to_thread(ctx.directory.add_account, address, None, who.actor, reason, state=state)
            created = await asyncio.to_thread(ctx.directory.account, address)
            assert created is not None
            if when is not None:
                await asyncio.to_thread(lambda: set_start(ctx.directory, created.address, when, by=who.actor,
                                                          reason=reason or "start date"))
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
    now, lc = ctx.directory.now(), ctx.settings.lifecycle
    steps = {r.info.address: next_transition(r.info, lc, now) for r in rows[:PAGE]}
    return page(request, "accounts.html", 400 if error else 200, rows=rows[:PAGE], total=total, query=query,
                state=state_filter, states=STATES, next_after=rows[PAGE - 1].info.address if more else "",
                steps=steps, error=error)


async def _detail_context(ctx: Any, address: str) -> dict[str, Any] | None:
    directory = ctx.directory
    store = ctx.store
    info = await asyncio.to_thread(directory.account, address)
    if info is None:
        return None
    facts = await asyncio.to_thread(store.facts, info.address)
    pairs = await asyncio.to_thread(directory.list_aliases)
    aliases = [a for a, t in pairs if t == info.address]
    forwards = [t for a, t in pairs if a == info.address]  # a leaver's mail forwarded to its successor
    now, lc = directory.now(), ctx.settings.lifecycle
    return {"info": info, "facts": facts, "aliases": aliases, "forwards": forwards, "roles": ROLES,
            "states": STATES, "locked": facts.locked_until is not None and facts.locked_until > now,
            "next_step": next_transition(info, lc, now, forwarding=bool(forwards)), "lifecycle": lc,
            "leaver_policy": leaver_policy_text(info, lc), "gone": info.state in GONE,
            "can_leave": info.state in (AccountState.PENDING, AccountState.ACTIVE, AccountState.SUSPENDED)}


@require(ADMIN, HELPDESK)
async def account_detail(request: Request) -> Response:
    ctx = request.app.state.ctx
    details = await _detail_context(ctx, request.path_params["address"])
    if details is None:
        return page(request, "notice.html", 404, title="No such account", text="There is no account with that address.")
    notice = DATE_NOTICES.get(request.query_params.get("done", ""), "")
    return page(request, "account.html", error="", date_notice=notice, **details)


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
        if action in ("start", "leave", "leave-cancel"):
            if not reason:
                raise ValueError("give a reason (it is kept in the audit log)")
            if action == "leave-cancel":
                from mailbastion.lifecycle.dates import set_dates

                await asyncio.to_thread(lambda: set_dates(d, address, end_at=None, by=who.actor, reason=reason))
                return _where(address, "leave_cancelled")
            when = _when(form)
            if action == "start":
                started = await asyncio.to_thread(lambda: set_start(d, address, when, by=who.actor, reason=reason))
                return _where(address, "started" if started else "start")
            successor = str(form.get("successor", "")).strip() or None
            left = await asyncio.to_thread(lambda: set_leave(d, ctx.settings, address, when, successor,
                                                             by=who.actor, reason=reason))
            return _where(address, "left" if left else "leave")
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
            from mailbastion.directory.webauthn_keys import SecurityKeys

            keys = SecurityKeys(d)  # no security key outlives the TOTP it stands in for (portal/webauthn.py)
            if await asyncio.to_thread(keys.list, address):
                await asyncio.to_thread(lambda: keys.remove(address, None, by=who.actor, reason=reason))
            return _where(address, "totp_reset")
        await asyncio.to_thread(lambda: s.unlock(address, by=who.actor, reason=reason))
        return _where(address, "unlocked")
    except (AddressError, DirectoryError, ValueError) as exc:
        return page(request, "account.html", 400, error=str(exc), date_notice="", **details)
