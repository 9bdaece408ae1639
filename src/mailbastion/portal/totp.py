"""TOTP (RFC 6238) for the portal: secrets, their otpauth URI and QR code, and checking a code once.

    secret = new_secret()                                   # base32, 160 bits (RFC 4226 §4 recommends it)
    uri = provisioning_uri(secret, "alice@example.org", issuer="mail.example.org")
    svg = qr_data_uri(uri)                                  # an <img src=...>, made here, no script
    step = matching_step(secret, "123456", now)             # the time step the code belongs to, or None

`matching_step` accepts the current step and one either side (clock drift, RFC 6238 §5.2); the caller
spends the step (`PortalStore.use_totp_step`) so one code signs in once.
"""

from __future__ import annotations

import base64
import hmac
import io
import time

import pyotp

__all__ = ["PERIOD", "matching_step", "new_secret", "provisioning_uri", "qr_data_uri"]

PERIOD = 30


def new_secret() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, address: str, *, issuer: str) -> str:
    return pyotp.TOTP(secret, interval=PERIOD).provisioning_uri(name=address, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data URI (segno; the page's CSP allows `img-src data:`)."""
    import segno

    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=5, border=4, dark="#000", light="#fff",
                                     xmldecl=False, svgns=True, title="TOTP set-up code")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (unix time // 30) whose code is `code`, among now and one step either side."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret, interval=PERIOD)
    t = time.time() if now is None else now
    step = int(t // PERIOD)
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.at(candidate * PERIOD), code):
            return candidate
    return None
