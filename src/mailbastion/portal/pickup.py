"""The secure pick-up of a confidential message (`[encryption] without_key = "pickup"`): an outside
recipient without a key gets a link and no content; the sender passes on a one-time code.

    GET  /pickup/<token>    the form asking for the code (nothing is opened)
    POST /pickup/<token>    the code: the message is opened once (crypto/pickup.py) and handed over as a
                            .eml download (a mail client shows it; the browser never renders its HTML)

The store destroys the message after `pickup_max_attempts` wrong codes and once it was opened; wrong
codes also count against the client address (the sign-in's throttle). The form's CSRF token is derived
from the link token, as the enrolment's.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from mailbastion.crypto.pickup import PickupExpired, PickupNotFound, PickupStore, WrongCode
from mailbastion.portal.auth import client_of, read_form
from mailbastion.portal.keys import token_hash
from mailbastion.portal.render import page

__all__ = ["pickup"]

GONE = ("This pick-up link is not valid any more: the message was already opened, destroyed after wrong codes, "
        "or expired. Ask the sender to send it again.")


async def pickup(request: Request) -> Response:
    ctx = request.app.state.ctx
    token = request.path_params["token"][:200]
    store = PickupStore.from_settings(ctx.settings)
    form_token = ctx.keys.mac("pickup", token_hash(token))
    if request.method == "GET":
        return page(request, "pickup.html", form_token=form_token, error="")
    client = client_of(request)
    if ctx.throttle.blocked(client):
        return page(request, "notice.html", 429, title="Too many attempts",
                    text="Too many wrong codes from this address; try again later.")
    form = await read_form(request)
    if not hmac.compare_digest(str(form.get("csrf", "")), form_token):
        return page(request, "notice.html", 403, title="Form refused", text="Reload the pick-up page and try again.")
    try:
        message = await asyncio.to_thread(store.open, token, str(form.get("code", ""))[:64])
    except WrongCode as exc:
        ctx.throttle.failed(client)
        if not exc.remaining:
            return page(request, "notice.html", 410, title="Message destroyed",
                        text="Too many wrong codes: the message was destroyed. Ask the sender to send it again.")
        return page(request, "pickup.html", 400, form_token=form_token,
                    error=f"Wrong code: {exc.remaining} attempt(s) left before the message is destroyed.")
    except PickupExpired:
        return page(request, "notice.html", 410, title="Link expired", text=GONE)
    except PickupNotFound:
        return page(request, "notice.html", 404, title="Link not valid", text=GONE)
    return Response(message, media_type="message/rfc822",
                    headers={"content-disposition": 'attachment; filename="confidential-message.eml"',
                             "cache-control": "no-store"})
