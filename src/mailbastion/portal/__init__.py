"""The web portal for administrators and users: server-rendered pages (Starlette, Jinja2), HTTPS, sessions
in the directory, TOTP for administrators, CSRF tokens on every form, no script.

    service.py          PortalService: what `serve` runs in the internal and all-in-one roles
    context.py          PortalContext: the directory, quarantine (+ index), spool, audit log, keys
    app.py              the route table;  security_headers.py  the headers of every response (CSP)
    auth.py, signin.py, enrol.py, keys.py, totp.py, throttle.py     who is signed in, and how
    admin_accounts.py, admin_system.py, quarantine_pages.py, user_pages.py, wellknown.py   the pages
    digest.py           the daily quarantine digest (the dashboard's measures: mailbastion.measures)
    message_view.py     a held message as inert text;  extensions.py  seams for other parts' pages

Names load lazily (PEP 562): importing the package loads neither Starlette nor the directory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbastion.portal.app import build_app
    from mailbastion.portal.context import PortalContext, public_url
    from mailbastion.portal.digest import send_digests
    from mailbastion.portal.extensions import (
        AppPasswordInfo,
        AppPasswords,
        ClientSetup,
        LandingPage,
        LandingRoutes,
        NavItem,
        PortalExtension,
    )
    from mailbastion.portal.service import PortalService

_WHERE = {
    "build_app": "app", "PortalContext": "context", "public_url": "context", "send_digests": "digest",
    "AppPasswordInfo": "extensions", "AppPasswords": "extensions", "ClientSetup": "extensions",
    "LandingPage": "extensions", "LandingRoutes": "extensions", "NavItem": "extensions",
    "PortalExtension": "extensions",
    "PortalService": "service",
}

__all__ = ["AppPasswordInfo", "AppPasswords", "ClientSetup", "LandingPage", "LandingRoutes",
           "NavItem", "PortalContext", "PortalExtension", "PortalService", "build_app",
           "public_url", "send_digests"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
