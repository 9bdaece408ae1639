"""The training pages of the portal (measure 8), added through `PortalExtension`, and the landing pages of
the phishing simulations (`LandingRoutes` at `/l/<campaign>/<token>`).

    GET      /my/training                       my assigned modules: due dates, state, score
    GET      /my/training/<module>              read the module; its quiz as a plain form (when assigned)
    POST     /my/training/<module>              answers: graded, recorded; a failed quiz can be taken again
    GET      /admin/training                    modules, assignment status per user and group, campaigns
    GET      /admin/training/campaigns/<name>   one campaign's results per user and group
    POST     /admin/training/assign             assign a module to everyone, a group or one account

Module text is Markdown rendered with raw HTML off (portal/markdown.py `to_html`): the only markup on
these pages that is not escaped by Jinja2. No script anywhere: the quiz is radio buttons in a form.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbastion.core.errors import MailError
from mailbastion.portal.auth import Principal, require
from mailbastion.portal.extensions import LandingPage, LandingRoutes, NavItem
from mailbastion.portal.render import ADMIN, EVERYONE, page

__all__ = ["TrainingLanding", "TrainingPages"]


def _stores(request: Request) -> tuple[Any, Any]:
    from mailbastion.training.campaigns import CampaignStore
    from mailbastion.training.store import TrainingStore

    ctx = request.app.state.ctx
    return TrainingStore(ctx.directory), CampaignStore(ctx.directory, ctx.settings)


def _modules(request: Request) -> dict[str, Any]:
    from mailbastion.training.modules import load_modules

    return load_modules(request.app.state.ctx.settings)


@require()
async def my_training(request: Request) -> Response:
    who: Principal = request.state.principal
    store, _ = _stores(request)
    items = await asyncio.to_thread(store.assignments, address=who.address)
    modules = await asyncio.to_thread(_modules, request)
    now = store.now()
    rows = [{"a": a, "title": modules[a.module].title if a.module in modules else a.module,
             "state": a.state(now), "pass_mark": modules[a.module].pass_mark if a.module in modules else None}
            for a in items]
    return page(request, "training_mine.html", rows=rows, now=now)


@require()
async def my_module(request: Request) -> Response:
    from mailbastion.portal.markdown import to_html
    from mailbastion.training.modules import grade

    who: Principal = request.state.principal
    module_id = request.path_params["module"]
    modules = await asyncio.to_thread(_modules, request)
    module = modules.get(module_id)
    if module is None:
        return page(request, "notice.html", 404, title="Not found", text="There is no training module of that name.")
    store, _ = _stores(request)
    assignment = await asyncio.to_thread(store.assignment, who.address, module_id)
    result, answers, error = None, {}, ""
    if request.method == "POST":
        if assignment is None:
            return page(request, "notice.html", 403, title="Not assigned",
                        text="This module is not assigned to you, so its quiz is not recorded.")
        form = request.state.form
        for i, q in enumerate(module.questions):
            raw = form.get(f"q{i}")
            if isinstance(raw, str) and raw.isdigit() and int(raw) < len(q.choices):
                answers[i] = int(raw)
        if len(answers) < len(module.questions):
            error = "Answer every question, then send the quiz."
        else:
            result = grade(module, answers)
            assignment = await asyncio.to_thread(store.record_attempt, who.address, module_id, result)
    return page(request, "training_module.html", 400 if error else 200, module=module,
                body_html=to_html(module.body), assignment=assignment, result=result, answers=answers,
                error=error, now=store.now())


PEOPLE_PER_PAGE = 200


@require(ADMIN)
async def admin_training(request: Request) -> Response:
    from mailbastion.training.report import build_report

    ctx = request.app.state.ctx
    modules = await asyncio.to_thread(_modules, request)
    report = await asyncio.to_thread(build_report, ctx.directory, ctx.settings)
    show = "overdue" if request.query_params.get("show") == "overdue" else "all"
    people = [u for u in report.users if u.overdue] if show == "overdue" else list(report.users)
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        number = 1
    start = (number - 1) * PEOPLE_PER_PAGE  # 10,000 accounts stay one page of 200 rows (bench/portal_bench.py)
    return page(request, "training_admin.html", modules=list(modules.values()), report=report,
                mandatory=ctx.settings.training.mandatory, error="", done=request.query_params.get("assigned", ""),
                people=people[start:start + PEOPLE_PER_PAGE], total=len(people), page_number=number,
                more=start + PEOPLE_PER_PAGE < len(people), show=show)


@require(ADMIN)
async def admin_campaign(request: Request) -> Response:
    _, campaigns = _stores(request)
    name = request.path_params["name"]
    info = await asyncio.to_thread(campaigns.campaign, name)
    if info is None:
        return page(request, "notice.html", 404, title="Not found", text="There is no campaign of that name.")
    results = await asyncio.to_thread(campaigns.results, name)
    groups = await asyncio.to_thread(campaigns.results_by_group, name)
    return page(request, "training_campaign.html", info=info, results=results, groups=groups)


@require(ADMIN)
async def admin_assign(request: Request) -> Response:
    who: Principal = request.state.principal
    ctx = request.app.state.ctx
    store, _ = _stores(request)
    form = request.state.form
    module, target = str(form.get("module", "")), str(form.get("target", "")).strip()
    if module not in await asyncio.to_thread(_modules, request):
        return page(request, "notice.html", 400, title="Not assigned", text="Choose one of the modules listed.")
    try:
        if target in ("", "all"):
            targets = await asyncio.to_thread(store.active_accounts)
        elif "@" in target and await asyncio.to_thread(ctx.directory.is_active, target):
            targets = [target]
        else:
            targets = await asyncio.to_thread(store.members, target)
    except (KeyError, ValueError, MailError):
        return page(request, "notice.html", 400, title="Not assigned",
                    text="The target is neither an active account nor a group (alias) of the directory.")
    due = store.now() + dt.timedelta(days=ctx.settings.training.due_days)
    new = await asyncio.to_thread(lambda: store.assign(targets, module, due_at=due, by=who.actor,
                                                       reason="assigned in the portal"))
    return RedirectResponse(f"/admin/training?assigned={len(new)}", status_code=303)


class TrainingPages:
    """The `PortalExtension` of training: routes, two navigation links, templates in the portal's folder."""

    name = "training"
    nav: Sequence[NavItem] = (NavItem("My training", "/my/training", EVERYONE),
                              NavItem("Training", "/admin/training", frozenset({ADMIN})))
    template_dir: Path | None = None  # training_*.html live with the portal's templates

    def routes(self, ctx: Any) -> Sequence[BaseRoute]:
        both = ["GET", "POST"]
        return [Route("/my/training", my_training, methods=["GET"]),
                Route("/my/training/{module}", my_module, methods=both),
                Route("/admin/training", admin_training, methods=["GET"]),
                Route("/admin/training/assign", admin_assign, methods=["POST"]),
                Route("/admin/training/campaigns/{name}", admin_campaign, methods=["GET"])]


class TrainingLanding(LandingRoutes):
    """Landing pages of every campaign in the directory (campaigns made after the portal started too);
    handlers registered by name still take precedence."""

    def __init__(self, directory: Any, settings: Any) -> None:
        super().__init__()
        self.directory = directory
        self.settings = settings

    async def page(self, campaign: str, token: str, client: str) -> LandingPage | None:
        if campaign in self.handlers:
            return await super().page(campaign, token, client)
        from mailbastion.training.campaigns import CampaignStore

        store = CampaignStore(self.directory, self.settings)
        click = await asyncio.to_thread(store.click, campaign, token, client=client)
        if click is None:
            return None
        t = click.template
        return LandingPage(
            "This was a phishing simulation",
            (("Nothing has happened to your account or your computer: the message you just followed "
              f"(\u201c{t.subject}\u201d) was a training exercise run by your organisation's mail team."),
             ("A real attacker's page would now ask for your password or start a download. These were the signs "
              "that gave the message away:"),
             *(f"\u2022 {sign}" for sign in t.signs),
             ("A short training module has been added to your training list; sign in to the portal and open "
              "\u201cMy training\u201d to take it. Next time, report such a message instead of clicking its link.")))
