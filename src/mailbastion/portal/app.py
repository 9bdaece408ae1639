"""The portal as an ASGI application (Starlette): the route table and the security headers.

    app = build_app(ctx)            # ctx: portal/context.py; served by portal/service.py over HTTPS

Every response carries the security headers below; every HTML page is `Cache-Control: no-store`. The
CSP allows no script (every flow is a plain form; only the two optional WebAuthn pages load one static
script of the portal's, under `SCRIPT_CSP`), styles and images from the portal itself (and `data:` images:
the TOTP QR code), forms posting to the portal only, and no framing.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

__all__ = ["PUBLIC_PATHS", "SCRIPT_CSP", "SECURITY_HEADERS", "build_app", "is_public", "routes"]

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CSP,
    "strict-transport-security": "max-age=63072000",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
_ENCODED = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
# The two WebAuthn pages (portal/webauthn.py) load /static/webauthn.js: the same policy plus script from the
# portal itself (never inline). A response may carry exactly this CSP instead of the default; nothing else.
SCRIPT_CSP = CSP.replace("default-src 'none';", "default-src 'none'; script-src 'self';")
_SCRIPT_CSP = (b"content-security-policy", SCRIPT_CSP.encode())


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, and no-store to every HTML page (held mail, accounts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent = message.get("headers", [])
                scripted = any(k.lower() == _SCRIPT_CSP[0] and v == _SCRIPT_CSP[1] for k, v in sent)
                headers = [h for h in sent if h[0].lower() not in dict(_ENCODED)]
                headers += [_SCRIPT_CSP if scripted and k == _SCRIPT_CSP[0] else (k, v) for k, v in _ENCODED]
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
