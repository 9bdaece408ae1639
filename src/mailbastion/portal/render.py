"""Server-rendered pages: one Jinja2 environment with autoescaping on for everything, and the page frame
(navigation for the signed-in role, the CSRF token for forms, a notice from the last action).

Every value reaches the HTML escaped; no template marks anything `|safe` except the QR code's data URI,
which is ours. Notices are chosen by code from `NOTICES`, never taken as text from the URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mailbastion.portal.extensions import NavItem

__all__ = ["NAV", "NOTICES", "make_environment", "page"]

TEMPLATES = Path(__file__).parent / "templates"

ADMIN, HELPDESK, USER = "administrator", "helpdesk", "user"
EVERYONE = frozenset({ADMIN, HELPDESK, USER})
NAV: tuple[NavItem, ...] = (
    NavItem("Dashboard", "/admin", frozenset({ADMIN})),
    NavItem("Accounts", "/admin/accounts", frozenset({ADMIN, HELPDESK})),
    NavItem("Quarantine", "/admin/quarantine", frozenset({ADMIN})),
    NavItem("Queue", "/admin/queue", frozenset({ADMIN})),
    NavItem("Audit log", "/admin/audit", frozenset({ADMIN})),
    NavItem("DNS", "/admin/dns", frozenset({ADMIN})),
    NavItem("My quarantine", "/my/quarantine", EVERYONE),
    NavItem("My account", "/my/account", EVERYONE),
)

NOTICES = {
    "released": "The message was released and is on its way.",
    "deleted": "The message was deleted.",
    "created": "The account was created.",
    "state": "The account's state was changed; its portal sessions ended where it is no longer active.",
    "leave": "The leave date was set.",
    "alias_added": "The alias was added.",
    "alias_removed": "The alias was removed.",
    "role": "The portal role was changed; the account's sessions ended.",
    "totp_reset": "The second factor was removed; it is enrolled again at the next sign-in.",
    "unlocked": "Sign-in was unlocked.",
    "password": "Your password was changed. Your other sessions ended.",
    "queue": "The queue entry was changed.",
    "signed_out": "You are signed out.",
    "expired": "Your session ended. Please sign in again.",
    "app_password_revoked": "The app password was revoked.",
}


def make_environment(extra_dirs: Iterable[Path] = ()) -> jinja2.Environment:
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(TEMPLATES)),
                                  *(jinja2.FileSystemLoader(str(d)) for d in extra_dirs)])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = _size
    return env


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` inside the frame for whoever is signed in (or nobody)."""
    env: jinja2.Environment = request.app.state.jinja
    principal = getattr(request.state, "principal", None)
    nav_items = [*NAV, *request.app.state.extra_nav]
    nav = [n for n in nav_items if principal is not None and principal.complete and principal.role in n.roles]
    notice = NOTICES.get(request.query_params.get("done", ""), "")
    html = env.get_template(template).render(
        principal=principal, csrf=principal.csrf if principal else "", nav=nav, path=request.url.path,
        notice=notice, **context)
    return HTMLResponse(html, status_code=status)
