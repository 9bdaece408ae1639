"""The user's "report a phishing message" pages (issue 12), a `PortalExtension` (extensions.py).

    GET  /my/phish?offset=N     my recent INBOX (date, from, subject as inert text), 25 a page, each with a
                                "Report as phishing" button (a POST form with the session's CSRF token)
    POST /my/phish/report       key=<the message's key>: the report goes through the loop (phish_report/):
                                acknowledged, learned, copies in colleagues' mailboxes quarantined; the
                                result page says what happened

The pages reach the mailboxes only through `PhishDesk` (apps/phish_report.py `PortalPhishDesk` implements
it): the portal imports no mailbox code. A key is looked up in the signed-in person's own INBOX only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailbastion.portal.auth import Principal, require
from mailbastion.portal.extensions import NavItem
from mailbastion.portal.render import EVERYONE, page

__all__ = ["PAGE_SIZE", "PhishDesk", "PhishPages"]

log = logging.getLogger("mailbastion.portal")
PAGE_SIZE = 25


class PhishDesk(Protocol):
    async def inbox_page(self, address: str, offset: int, limit: int) -> Any:
        """An object with `entries` (each: key, date, sender, subject), `total`, `offset`, `next_offset`."""
        ...

    async def report(self, address: str, key: str) -> Any:
        """Report the INBOX message `key` of `address`: a ReportOutcome (report_id, refused, subjects,
        handled, learned, moved, truncated), or None when there is no such message."""
        ...


@dataclass
class PhishPages:
    desk: PhishDesk
    name: str = "phish"
    nav: Sequence[NavItem] = field(default=(NavItem("Report phishing", "/my/phish", EVERYONE),))
    template_dir: Path | None = None  # phish_*.html live with the portal's own templates

    def routes(self, ctx: Any) -> Sequence[Route]:
        return [Route("/my/phish", require()(self.inbox), methods=["GET"]),
                Route("/my/phish/report", require()(self.report), methods=["POST"])]

    async def inbox(self, request: Request) -> Response:
        who: Principal = request.state.principal
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            offset = 0
        inbox = await self.desk.inbox_page(who.address, offset, PAGE_SIZE)
        prev = max(0, offset - PAGE_SIZE) if offset > 0 else None
        return page(request, "phish_inbox.html", inbox=inbox, prev_offset=prev)

    async def report(self, request: Request) -> Response:
        who: Principal = request.state.principal
        key = str(request.state.form.get("key", ""))[:255]
        outcome = await self.desk.report(who.address, key)
        if outcome is None:
            return page(request, "notice.html", 404, title="Message not found",
                        text="That message is no longer in your inbox.", link="/my/phish")
        if outcome.refused:
            return page(request, "notice.html", 403, title="Report refused", text=outcome.refused, link="/my/phish")
        log.info("portal.phish_report user=%s report=%s moved=%d", who.address, outcome.report_id, len(outcome.moved))
        return page(request, "phish_result.html", outcome=outcome)
