"""The acceptable use policy in the portal (issue 12, measure 7): the page where a person reads and accepts
the version in effect, and the administrators' page of versions and the acceptance report.

    GET  /aup                       the version in effect, rendered (portal/markdown.py: no raw HTML, no script)
    POST /aup                       accept it: the version and the SHA-256 of the text shown, a tick box
    GET  /admin/aup                 versions, and who accepted, is due or overdue (?version=, ?state=, ?page=)
    GET  /admin/aup/report.csv      the same report as CSV (what `mailbastion aup report --csv` prints)
    GET  /admin/aup/v/{version}     the text of one version

Roles: everyone signed in accepts (an administrator too). The report is for administrators and the helpdesk
(it is about accounts, and the helpdesk is who reminds people); both read it only: versions are published on
the command line (`mailbastion aup publish`), where the text comes from the site's change process.

First sign-in: `after_signin(ctx, address, target)` (called by signin.start_session) sends a person whose
acceptance is missing to /aup?next=<target> before anything else; after accepting they go on to `target`.
`/` sends them there too. Every acceptance is an audit record (`aup.accepted`, aup/store.py).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbastion.aup.standing import AupPolicy, State, counts, standing_of, standings
from mailbastion.aup.store import AupError, AupStore
from mailbastion.portal.auth import Principal, client_of, require, safe_next
from mailbastion.portal.extensions import NavItem
from mailbastion.portal.markdown import to_html
from mailbastion.portal.render import ADMIN, EVERYONE, HELPDESK, page

__all__ = ["ACCEPT_PATH", "AupPages", "after_signin"]

ACCEPT_PATH = "/aup"
REPORT_ROLES = (ADMIN, HELPDESK)
PAGE_SIZE = 200


def _store(ctx: Any) -> AupStore:
    return ctx.aup  # type: ignore[no-any-return]  # PortalContext.aup (cached)


def _policy(ctx: Any) -> AupPolicy:
    return AupPolicy.from_settings(ctx.settings)


def pending_for(ctx: Any, address: str) -> bool:
    """True when `address` has yet to accept the version in effect (synchronous: the database)."""
    s = standing_of(_store(ctx), _policy(ctx), address)
    return s is not None and s.state is not State.ACCEPTED


async def after_signin(ctx: Any, address: str, target: str) -> str:
    """Where a complete sign-in goes: the policy first when it is not accepted, else `target`. A database
    failure here never blocks the sign-in (the submission gate and the report still see it)."""
    try:
        pending = await asyncio.to_thread(pending_for, ctx, address)
    except Exception:  # noqa: BLE001 - sign-in goes on; the policy is asked for at the next one
        return target
    if not pending or target.startswith(ACCEPT_PATH):
        return target
    return f"{ACCEPT_PATH}?next={quote(safe_next(target), safe='')}"


@require()
async def accept_page(request: Request) -> Response:
    ctx = request.app.state.ctx
    who: Principal = request.state.principal
    store, policy = _store(ctx), _policy(ctx)
    target = safe_next(request.query_params.get("next"))
    error, status = "", 200
    if request.method == "POST":
        form = request.state.form
        target = safe_next(str(form.get("next", "/")))
        version, sha = str(form.get("version", ""))[:32], str(form.get("sha256", ""))[:64]
        if form.get("agree") != "yes":
            error, status = "Tick the box to confirm you have read the policy and accept it.", 400
        else:
            try:
                await asyncio.to_thread(lambda: store.accept(who.address, version, sha256=sha,
                                                             client=client_of(request), by=who.actor))
            except AupError as exc:
                error, status = str(exc), 409
            else:
                return RedirectResponse(target, status_code=303)  # "/": the role's own first page
    current = await asyncio.to_thread(store.current)
    standing = await asyncio.to_thread(standing_of, store, policy, who.address)
    history = await asyncio.to_thread(store.history, who.address)
    return page(request, "aup.html", status, version=current, body=to_html(current.text) if current else "",
                standing=standing, history=history, next=target, error=error, enforce=policy.enforce)


@dataclass(frozen=True, slots=True)
class _Report:
    version: Any
    rows: list[Any]
    counts: dict[State, int]


def _report(ctx: Any, version: str | None) -> _Report | None:
    store = _store(ctx)
    v = store.version(version) if version else store.current()
    if v is None:
        return None
    rows = standings(store, _policy(ctx), v)
    return _Report(v, rows, counts(rows))


@require(*REPORT_ROLES)
async def admin_page(request: Request) -> Response:
    ctx = request.app.state.ctx
    store = _store(ctx)
    q = request.query_params
    wanted = q.get("version") or None
    state = q.get("state", "")
    try:
        number = max(1, int(q.get("page", "1")))
    except ValueError:
        number = 1
    versions = await asyncio.to_thread(store.versions)
    current = await asyncio.to_thread(store.current)
    report = await asyncio.to_thread(_report, ctx, wanted)
    rows = [r for r in report.rows if not state or r.state.value == state] if report else []
    shown = rows[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
    return page(request, "aup_admin.html", 404 if wanted and report is None else 200, versions=versions,
                current=current, report=report, rows=shown, total=len(rows), page_number=number,
                more=len(rows) > number * PAGE_SIZE, state=state, states=[s.value for s in State],
                now=store.now(), settings=ctx.settings.aup)


@require(*REPORT_ROLES)
async def report_csv(request: Request) -> Response:
    ctx = request.app.state.ctx
    report = await asyncio.to_thread(_report, ctx, request.query_params.get("version") or None)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["address", "version", "state", "overdue", "due_at", "accepted_at", "accepted_sha256", "client",
                "notified_at"])
    for r in report.rows if report else []:
        a = r.accepted
        w.writerow([r.address, r.version, r.state.value, "yes" if r.state is State.OVERDUE else "no",
                    r.due_at.isoformat(timespec="seconds"), a.accepted_at.isoformat(timespec="seconds") if a else "",
                    a.sha256 if a else "", a.client if a else "",
                    r.notified_at.isoformat(timespec="seconds") if r.notified_at else ""])
    name = f"aup-report-{report.version.version}.csv" if report else "aup-report.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"})


@require(*REPORT_ROLES)
async def version_page(request: Request) -> Response:
    ctx = request.app.state.ctx
    v = await asyncio.to_thread(_store(ctx).version, request.path_params["version"][:32])
    if v is None:
        return page(request, "notice.html", 404, title="Not found", text="There is no such version.")
    return page(request, "aup_version.html", version=v, body=to_html(v.text))


@dataclass
class AupPages:
    """The PortalExtension of the acceptable use policy (portal/extensions.py)."""

    name: str = "aup"
    nav: Sequence[NavItem] = field(default_factory=lambda: (
        NavItem("Policy acceptance", "/admin/aup", frozenset(REPORT_ROLES)),
        NavItem("Acceptable use", ACCEPT_PATH, EVERYONE),
    ))
    template_dir: Path | None = None  # aup*.html live with the portal's templates

    def routes(self, ctx: Any) -> Sequence[BaseRoute]:
        return [
            Route(ACCEPT_PATH, accept_page, methods=["GET", "POST"]),
            Route("/admin/aup", admin_page, methods=["GET"]),
            Route("/admin/aup/report.csv", report_csv, methods=["GET"]),
            Route("/admin/aup/v/{version}", version_page, methods=["GET"]),
        ]
