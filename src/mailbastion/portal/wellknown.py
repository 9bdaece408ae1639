"""Public endpoints other parts need (no session): the MTA-STS policy, mail client set-up documents, and the
phishing-simulation landing pages.

    GET  /.well-known/mta-sts.txt                  RFC 8461 §3.2, served for https://mta-sts.<domain>/
    GET  /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=A    Thunderbird autoconfig
    GET  /mail/config-v1.1.xml?emailaddress=A                           (the autoconfig.<domain> form)
    POST /autodiscover/autodiscover.xml            Outlook (POX) autodiscover; also /Autodiscover/Autodiscover.xml
    GET  /l/<campaign>/<token>                     a landing page (issue 13 registers the campaigns)

The MTA-STS policy is the one `dns records` publishes the id of (domain_dns/records.py, the MX names
`server.hostname`, mode `portal.mta_sts_mode`). Client documents come from the wired `ClientSetup`; until one
is wired they are 404, which mail clients read as "no document here".
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailbastion.portal.auth import client_of
from mailbastion.portal.render import page

__all__ = ["autoconfig", "autodiscover", "landing", "mta_sts"]

MAX_AUTODISCOVER_BODY = 64 * 1024


async def mta_sts(request: Request) -> Response:
    from mailbastion.domain_dns.records import mta_sts_policy

    s = request.app.state.ctx.settings
    # RFC 8461 §3.3: text/plain; the policy must not be cached beyond max_age, which it states itself.
    return PlainTextResponse(mta_sts_policy([s.server.hostname], mode=s.portal.mta_sts_mode),
                             media_type="text/plain; charset=utf-8")


def _xml(body: str | None) -> Response:
    if body is None:
        return PlainTextResponse("no client set-up document for this address\n", status_code=404)
    return Response(body, media_type="application/xml; charset=utf-8")


async def autoconfig(request: Request) -> Response:
    setup = request.app.state.ctx.client_setup
    address = request.query_params.get("emailaddress", "").strip()[:320]
    if setup is None or "@" not in address:
        return _xml(None)
    return _xml(setup.thunderbird_autoconfig(address))


async def autodiscover(request: Request) -> Response:
    setup = request.app.state.ctx.client_setup
    if setup is None or request.method != "POST":
        return _xml(None)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_AUTODISCOVER_BODY:
            return PlainTextResponse("request too large\n", status_code=413)
    from defusedxml import ElementTree  # type: ignore[import-untyped]

    try:
        root = ElementTree.fromstring(body)
    except Exception:  # noqa: BLE001 - defusedxml's and expat's errors alike: a bad request
        return PlainTextResponse("not an autodiscover request\n", status_code=400)
    address = next((el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "EMailAddress"), "").strip()
    if "@" not in address:
        return PlainTextResponse("no EMailAddress in the request\n", status_code=400)
    return _xml(setup.outlook_autodiscover(address[:320]))


async def landing(request: Request) -> Response:
    ctx = request.app.state.ctx
    found = await ctx.landing.page(request.path_params["campaign"], request.path_params["token"][:200],
                                   client_of(request))
    if found is None:
        return page(request, "notice.html", 404, title="Not found", text="There is nothing at this address.")
    return page(request, "landing.html", found.status, landing=found)
