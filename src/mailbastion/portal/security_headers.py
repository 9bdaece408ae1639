"""The security headers of every portal response, and the one other CSP a page may choose.

    app.add_middleware(SecurityHeaders)                                  # portal/app.py
    response.headers["content-security-policy"] = SCRIPT_CSP            # portal/webauthn.py, its two pages

Every response carries SECURITY_HEADERS; every HTML page is `Cache-Control: no-store`. The CSP allows no
script (every flow is a plain form; only the two optional WebAuthn pages load one static script of the
portal's, under `SCRIPT_CSP`), styles and images from the portal itself (and `data:` images: the TOTP QR
code), forms posting to the portal only, and no framing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SCRIPT_CSP", "SECURITY_HEADERS", "SecurityHeaders"]

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
