"""Seams for what other parts add to the portal, each with a default that says "not available yet".

- `PortalExtension`: pages of another part (the acceptable use policy and training of issue 13): its
  routes (protected with `portal.auth.require`), its links in the navigation, its template folder.
- `LandingRoutes`: the phishing-simulation landing pages, public, at `/l/<campaign>/<token>`.
- `ClientSetup`: Thunderbird autoconfig and Outlook autodiscover documents (issue 11's generator).
- `AppPasswords`: a user's app passwords; by default the directory's (`DirectoryAppPasswords`).

A landing handler returns a `LandingPage` of plain text (escaped when shown): the landing page explains
the signs a person missed; it never runs the campaign's own HTML.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mailbastion.directory.app_passwords import AppPasswordInfo  # one type: what may be shown of one

__all__ = ["AppPasswordInfo", "AppPasswords", "ClientSetup", "DirectoryAppPasswords", "LandingHandler", "LandingPage",
           "LandingRoutes", "NavItem", "PortalExtension"]


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[str]  # who sees the link: "administrator", "helpdesk", "user"


class PortalExtension(Protocol):
    """Pages another part adds. `routes` receives the portal's context (directory, audit, settings)."""

    name: str
    nav: Sequence[NavItem]
    template_dir: Path | None

    def routes(self, ctx: Any) -> Sequence[Any]:  # starlette.routing.BaseRoute
        ...


@dataclass(frozen=True, slots=True)
class LandingPage:
    title: str
    paragraphs: tuple[str, ...]  # plain text; each becomes a <p>, escaped
    status: int = 200


LandingHandler = Callable[[str, str], Awaitable[LandingPage | None]]  # (token, client address) -> page | None


@dataclass
class LandingRoutes:
    """campaign name -> handler. An unknown campaign or a handler returning None is a plain 404."""

    handlers: dict[str, LandingHandler] = field(default_factory=dict)

    def register(self, campaign: str, handler: LandingHandler) -> None:
        if not campaign.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"campaign name {campaign!r}: letters, digits, - and _ only")
        self.handlers[campaign] = handler

    async def page(self, campaign: str, token: str, client: str) -> LandingPage | None:
        handler = self.handlers.get(campaign)
        return None if handler is None else await handler(token, client)


class ClientSetup(Protocol):
    """Documents mail clients fetch to configure themselves. None: no document for this address."""

    def thunderbird_autoconfig(self, address: str) -> str | None:  # Mozilla autoconfig v1.1 XML
        ...

    def outlook_autodiscover(self, address: str) -> str | None:  # Outlook (POX) autodiscover response XML
        ...


class AppPasswords(Protocol):
    def list(self, address: str) -> Sequence[AppPasswordInfo]: ...

    def create(self, address: str, name: str, *, by: str) -> str:  # the password, shown once
        ...

    def revoke(self, address: str, name: str, *, by: str) -> None: ...


class DirectoryAppPasswords:
    """`AppPasswords` of the directory (directory/app_passwords.py): argon2id hashes, audited changes."""

    def __init__(self, directory: Any) -> None:
        self.directory = directory

    def list(self, address: str) -> Sequence[AppPasswordInfo]:
        return self.directory.list_app_passwords(address)

    def create(self, address: str, name: str, *, by: str) -> str:
        return str(self.directory.add_app_password(address, name, by=by, reason="portal").secret)

    def revoke(self, address: str, name: str, *, by: str) -> None:
        if not name:  # the directory's None means every device: the portal revokes one at a time
            raise ValueError("name the app password to revoke")
        self.directory.revoke_app_password(address, name, by=by, reason="portal")  # AppPasswordUnknown
