"""The portal as an ASGI application (Starlette): the route table, behind the security headers
(portal/security_headers.py).

    app = build_app(ctx)            # ctx: portal/context.py; served by portal/service.py over HTTPS
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mailbastion.portal import (
    admin_accounts,
    admin_system,
    enrol,
    pickup,
    quarantine_pages,
    signin,
    user_pages,
    webauthn,
    wellknown,
)
from mailbastion.portal.auth import load_principal
from mailbastion.portal.context import PortalContext
from mailbastion.portal.extensions import NavItem
from mailbastion.portal.render import ADMIN, HELPDESK, TEMPLATES, make_environment, page
from mailbastion.portal.security_headers import SecurityHeaders

__all__ = ["PUBLIC_PATHS", "build_app", "is_public", "routes"]


async def home(request: Request) -> Response:
    who = await load_principal(request)
    if isinstance(who, Response):
        return who
    target = {ADMIN: "/admin", HELPDESK: "/admin/accounts"}.get(who.role, "/my/quarantine")
    from mailbastion.portal.aup_pages import after_signin  # the acceptable use policy, when not accepted yet

    return RedirectResponse(await after_signin(request.app.state.ctx, who.address, target), status_code=303)


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/static/"):
        return PlainTextResponse("not found\n", status_code=404)
    return page(request, "notice.html", 404, title="Not found", text="There is no page at this address.")


async def server_error(request: Request, exc: Exception) -> Response:
    return page(request, "notice.html", 500, title="Something went wrong",
                text="The portal could not complete this request; it is in the server's log.")


def routes(ctx: PortalContext) -> list[BaseRoute]:
    get, post, both = ["GET"], ["POST"], ["GET", "POST"]
    table: list[BaseRoute] = [
        Route("/", home, methods=get),
        Route("/signin", signin.signin_form, methods=get),
        Route("/signin", signin.signin_submit, methods=post),
        Route("/signin/totp", signin.totp_form, methods=both),
        Route("/signin/totp-enrol", signin.totp_enrol, methods=both),
        Route("/signin/webauthn", webauthn.signin_with_key, methods=both),
        Route("/signout", signin.signout, methods=post),
        Route("/enrol/{token}", enrol.enrol, methods=both),
        Route("/pickup/{token}", pickup.pickup, methods=both),
        Route("/admin", admin_system.dashboard, methods=get),
        Route("/admin/recheck", admin_system.recheck, methods=post),
        Route("/admin/accounts", admin_accounts.accounts, methods=both),
        Route("/admin/accounts/{address}", admin_accounts.account_detail, methods=get),
        Route("/admin/accounts/{address}/{action}", admin_accounts.account_action, methods=post),
        Route("/admin/quarantine", quarantine_pages.admin_list, methods=get),
        Route("/admin/quarantine/{qid}", quarantine_pages.admin_message, methods=get),
        Route("/admin/quarantine/{qid}/{action}", quarantine_pages.admin_action, methods=post),
        Route("/admin/queue", admin_system.queue_page, methods=get),
        Route("/admin/queue/{qid}/{op}", admin_system.queue_action, methods=post),
        Route("/admin/audit", admin_system.audit_log, methods=get),
        Route("/admin/audit/verify", admin_system.audit_verify, methods=post),
        Route("/admin/dns", admin_system.dns_page, methods=get),
        Route("/admin/dns/check", admin_system.dns_page, methods=post),
        Route("/my/quarantine", quarantine_pages.my_list, methods=get),
        Route("/my/quarantine/{qid}", quarantine_pages.my_message, methods=get),
        Route("/my/quarantine/{qid}/release", quarantine_pages.my_release, methods=post),
        Route("/my/account", user_pages.my_account, methods=both),
        Route("/my/app-passwords", user_pages.app_passwords, methods=get),
        Route("/my/app-passwords/{action:str}", user_pages.app_password_action, methods=post),
        Route("/my/security-keys", webauthn.security_keys, methods=both),
        # public: policy, client set-up and landing pages
        Route("/.well-known/mta-sts.txt", wellknown.mta_sts, methods=get),
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", wellknown.autoconfig, methods=get),
        Route("/mail/config-v1.1.xml", wellknown.autoconfig, methods=get),
        Route("/autodiscover/autodiscover.xml", wellknown.autodiscover, methods=both),
        Route("/Autodiscover/Autodiscover.xml", wellknown.autodiscover, methods=both),
        Route("/l/{campaign}/{token}", wellknown.landing, methods=get),
        Mount("/static", StaticFiles(directory=str(TEMPLATES.parent / "static")), name="static"),
    ]
    for extension in ctx.extensions:
        table[-1:-1] = list(extension.routes(ctx))
    return table


# What answers without a session; everything else sends a visitor to /signin.
PUBLIC_PATHS = ("/enrol/", "/pickup/", "/.well-known/", "/mail/config-v1.1.xml", "/autodiscover/", "/Autodiscover/", "/l/",
                "/static/")


def is_public(path: str) -> bool:
    return path == "/signin" or path.startswith(PUBLIC_PATHS)


def build_app(ctx: PortalContext) -> Starlette:
    app = Starlette(routes=routes(ctx), exception_handlers={404: not_found, 500: server_error})
    app.state.ctx = ctx
    app.state.jinja = make_environment([e.template_dir for e in ctx.extensions if e.template_dir is not None])
    app.state.extra_nav = [NavItem("Security keys", "/my/security-keys", frozenset({ADMIN, HELPDESK})),
                           *(item for e in ctx.extensions for item in e.nav)]
    app.add_middleware(SecurityHeaders)
    return app
